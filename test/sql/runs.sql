-- runs: agent runs (claims, leases, the clock) and their bad input
-- errors as SQLSTATE: message (hint), run ids masked (positions vary)
CREATE FUNCTION runs_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hint text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'run \d+', 'run N')
        || coalesce(' (hint: ' || nullif(hint, '') || ')', '');
END $$;
CREATE FUNCTION run_of(conv text) RETURNS bigint LANGUAGE sql AS
    $$ SELECT max(run_id) FROM aegis.runs WHERE conversation_id = conv $$;
-- settings
SHOW aegis.require_configured_agents;
SHOW aegis.max_open_runs;
SET aegis.max_open_runs = 0;
-- configure_agent: defaults, a change, bad input
SELECT aegis.configure_agent('rt');
SELECT aegis.configure_agent('rt-fast', queue_timeout => '1 ms', lease => '1 hour', max_attempts => 2);
SELECT aegis.configure_agent('rt-fast', queue_timeout => '1 ms', lease => '1 hour', max_attempts => 1);
SELECT agent_type, queue_timeout, lease, max_attempts FROM aegis.agents ORDER BY 1;
SELECT runs_try($$SELECT aegis.configure_agent(NULL)$$);
SELECT runs_try($$SELECT aegis.configure_agent('')$$);
SELECT runs_try($$SELECT aegis.configure_agent('bad type')$$);
SELECT runs_try($$SELECT aegis.configure_agent('x', queue_timeout => '-1 s')$$);
SELECT runs_try($$SELECT aegis.configure_agent('x', queue_timeout => '0')$$);
SELECT runs_try($$SELECT aegis.configure_agent('x', lease => '-5 s')$$);
SELECT runs_try($$SELECT aegis.configure_agent('x', lease => '2 days')$$);
SELECT runs_try($$SELECT aegis.configure_agent('x', lease => NULL)$$);
SELECT runs_try($$SELECT aegis.configure_agent('x', max_attempts => 0)$$);
SELECT runs_try($$SELECT aegis.configure_agent('x', max_attempts => -1)$$);
SELECT runs_try($$SELECT aegis.configure_agent('x', max_attempts => 101)$$);
SELECT count(*) AS agents_after_bad_input FROM aegis.agents;
-- request_run: configured agent types only, one open run per conversation
SELECT runs_try($$SELECT aegis.request_run('rc-1', 'hello', NULL, 'unknown-agent')$$);
SELECT runs_try($$SELECT aegis.request_run('rc-1', 'hello')$$);
SELECT aegis.request_run('rc-1', 'hello', 'agent-1', 'rt') AS r1 \gset
SELECT aegis.request_run('rc-1', 'hello', 'agent-1', 'rt') = :r1 AS same_request_same_run;
SELECT runs_try($$SELECT aegis.request_run('rc-1', 'another question', 'agent-1', 'rt')$$);
SET aegis.max_open_runs = 2;
SELECT aegis.request_run('rc-1', 'another question', 'agent-1', 'rt') > :r1 AS second_open_run_allowed;
RESET aegis.max_open_runs;
SET aegis.require_configured_agents = off;
SELECT aegis.request_run('rc-2', 'hello', NULL, 'unknown-agent') > 0 AS unconfigured_allowed_when_off;
RESET aegis.require_configured_agents;
SELECT runs_try($$SELECT aegis.request_run('rc 3', 'hello', NULL, 'rt')$$);
SELECT runs_try($$SELECT aegis.request_run('rc-3', NULL, NULL, 'rt')$$);
SELECT conversation_id, agent_type, state, attempt, worker FROM aegis.runs
 WHERE conversation_id LIKE 'rc-%' ORDER BY run_id;
-- claim_run: oldest first, bad input
SELECT runs_try($$SELECT * FROM aegis.claim_run(NULL, 'w1')$$);
SELECT runs_try($$SELECT * FROM aegis.claim_run('rt', NULL)$$);
SELECT runs_try($$SELECT * FROM aegis.claim_run('rt', '')$$);
SELECT runs_try($$SELECT * FROM aegis.claim_run('rt', repeat('w', 201))$$);
SELECT runs_try($$SELECT * FROM aegis.claim_run('r t', 'w1')$$);
SELECT runs_try($$SELECT * FROM aegis.claim_run('rt', 'w1', 0)$$);
SELECT runs_try($$SELECT * FROM aegis.claim_run('rt', 'w1', 1001)$$);
SELECT runs_try($$SELECT * FROM aegis.claim_run('rt', 'w1', NULL)$$);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT runs_try($$SELECT * FROM aegis.claim_run('rt', 'w1')$$);
ROLLBACK;
SELECT conversation_id, message, agent_id, agent_type, attempt, run_id = :r1 AS is_r1
  FROM aegis.claim_run('rt', 'w1');
SELECT conversation_id, message, attempt FROM aegis.claim_run('rt', 'w2', 5);
SELECT count(*) AS nothing_left FROM aegis.claim_run('rt', 'w2', 5);
SELECT conversation_id, state, worker, attempt, lease_expires_at > now() AS leased,
       started_at IS NOT NULL AS started, queue_wait IS NOT NULL AS has_queue_wait
  FROM aegis.runs WHERE agent_type = 'rt' ORDER BY run_id;
-- wait_run: bad input; nothing queued and timeout 0: none; a queued run: claimed
SELECT runs_try($$SELECT * FROM aegis.wait_run('rt', 'w1', -1)$$);
SELECT runs_try($$SELECT * FROM aegis.wait_run('rt', 'w1', 60001)$$);
SELECT runs_try($$SELECT * FROM aegis.wait_run('rt', NULL, 10)$$);
SELECT count(*) AS none_queued FROM aegis.wait_run('rt', 'w3', 0);
SELECT aegis.request_run('rc-4', 'wait for me', NULL, 'rt') > 0 AS requested;
SELECT conversation_id, attempt FROM aegis.wait_run('rt', 'w3', 1000);
-- heartbeat_run: extends the holder's lease; unknown run, wrong worker, NULL
SELECT aegis.heartbeat_run(:r1, 'w1') > now() AS extended;
SELECT runs_try($$SELECT aegis.heartbeat_run(-5, 'w1')$$);
SELECT runs_try(format($$SELECT aegis.heartbeat_run(%s, 'w2')$$, :r1));
SELECT runs_try($$SELECT aegis.heartbeat_run(NULL, 'w1')$$);
SELECT runs_try(format($$SELECT aegis.heartbeat_run(%s, NULL)$$, :r1));
-- finish_run: the done event and the state in one transaction; bad done data
-- changes nothing; the holder only; once
SELECT runs_try(format($$SELECT aegis.finish_run(%s, 'w1', 'exec-1', 'completed', -1)$$, :r1));
SELECT runs_try(format($$SELECT aegis.finish_run(%s, 'w1', NULL)$$, :r1));
SELECT runs_try(format($$SELECT aegis.finish_run(%s, 'w2', 'exec-1')$$, :r1));
SELECT runs_try($$SELECT aegis.finish_run(0, 'w1', 'exec-1')$$);
SELECT state FROM aegis.runs WHERE run_id = :r1;
SELECT aegis.finish_run(:r1, 'w1', 'exec-1', 'completed', 5678, 0.045, ARRAY['spacing-calculation']) AS done_id \gset
SELECT event_type, payload FROM aegis.events WHERE id = :done_id;
SELECT state, end_event_id = :done_id AS ends_with_done, finished_at IS NOT NULL AS finished,
       lease_expires_at IS NULL AS no_lease, run_time IS NOT NULL AS has_run_time
  FROM aegis.runs WHERE run_id = :r1;
SELECT runs_try(format($$SELECT aegis.finish_run(%s, 'w1', 'exec-1')$$, :r1));
SELECT runs_try(format($$SELECT aegis.heartbeat_run(%s, 'w1')$$, :r1));
-- fail_run: the error event, final; bad error text
SELECT runs_try(format($$SELECT aegis.fail_run(%s, 'w2', NULL)$$, run_of('rc-1')));
SELECT runs_try(format($$SELECT aegis.fail_run(%s, 'w2', 'boom')$$, run_of('rc-2')));
SELECT state FROM aegis.runs WHERE run_id = run_of('rc-1');
SELECT runs_try(format($$SELECT aegis.fail_run(%s, 'w1', 'boom')$$, run_of('rc-1')));
SELECT aegis.fail_run(run_of('rc-1'), 'w2', 'Budget exceeded: 150000 tokens') > 0 AS failed;
SELECT e.event_type, e.payload FROM aegis.events e JOIN aegis.runs r ON e.id = r.end_event_id
 WHERE r.conversation_id = 'rc-1' AND r.state = 'failed';
-- a failed run is final: the same message again starts a new run
SELECT run_of('rc-1') AS failed_run \gset
SELECT aegis.request_run('rc-1', 'another question', 'agent-1', 'rt') > :failed_run AS new_run_after_failure;
SELECT message, state, attempt FROM aegis.runs WHERE conversation_id = 'rc-1' ORDER BY run_id;
-- release_run: back to the queue at once, the attempt not counted
SELECT attempt AS attempt_before FROM aegis.claim_run('rt', 'w4');
SELECT aegis.release_run(run_of('rc-1'), 'w4');
SELECT state, worker, attempt FROM aegis.runs WHERE run_id = run_of('rc-1');
SELECT runs_try(format($$SELECT aegis.release_run(%s, 'w4')$$, run_of('rc-1')));
-- the clock: queue timeout, lease expiry (back to the queue), max_attempts
SELECT aegis.request_run('rc-5', 'nobody comes', NULL, 'rt-fast') > 0 AS requested;
SELECT pg_sleep(0.01);   -- longer than rt-fast's queue_timeout of 1 ms
SELECT aegis.enforce_runs();
SELECT state, error FROM aegis.runs WHERE conversation_id = 'rc-5';
SELECT e.payload FROM aegis.events e WHERE e.stream_kind = 'conversation' AND e.stream_id = 'rc-5';
SELECT aegis.enforce_runs() ->> 'timed_out' AS timed_out_again;
UPDATE aegis.run_requests SET lease_expires_at = clock_timestamp() - interval '1 s'
 WHERE event_id = run_of('rc-4');
SELECT aegis.maintain();
SELECT state, worker, attempt, lease_expires_at FROM aegis.runs WHERE conversation_id = 'rc-4';
SELECT conversation_id, attempt FROM aegis.claim_run('rt', 'w5');
SELECT runs_try(format($$SELECT aegis.heartbeat_run(%s, 'w3')$$, run_of('rc-4')));
UPDATE aegis.agents SET max_attempts = 2 WHERE agent_type = 'rt';
UPDATE aegis.run_requests SET lease_expires_at = clock_timestamp() - interval '1 s'
 WHERE event_id = run_of('rc-4');
SELECT aegis.enforce_runs();
SELECT state, attempt, error FROM aegis.runs WHERE conversation_id = 'rc-4';
SELECT count(*) AS one_error FROM aegis.events
 WHERE stream_kind = 'conversation' AND stream_id = 'rc-4' AND event_type = 'error';
-- a done published outside the protocol ends the open run
SELECT aegis.publish_done('rc-2', 'exec-direct', 'completed') > 0 AS direct_done;
SELECT aegis.enforce_runs() ->> 'settled' AS settled;
SELECT state FROM aegis.runs WHERE conversation_id = 'rc-2';
-- every state in the view
SELECT state, count(*) FROM aegis.runs WHERE conversation_id LIKE 'rc-%' GROUP BY state ORDER BY state;
