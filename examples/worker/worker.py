#!/usr/bin/python3
"""aegis reference worker: takes agent runs from PostgreSQL and answers them.

The loop of every AEGIS agent worker, with a scripted pipeline in place of
the LLM: wait for a run (aegis.wait_run: no polling, the requesting commit
wakes it), publish one node_end per step of the seed's pipeline, each in one
transaction with a heartbeat (a step is stored only while this worker holds
the lease), then aegis.finish_run (the seed's done event, with tokens and
cost).  A run taken over after a lost lease resumes after the steps already
in the conversation.  --fail-after N fails each run after N steps
(aegis.fail_run: the seed's error event).  SIGTERM: the run in hand goes back
to the queue at once (aegis.release_run) and the worker exits 0.

Needs Debian's python3-psycopg (psycopg 3).  See README.md.
"""
import argparse
import os
import signal
import socket
import sys
import threading
import time

import psycopg
from psycopg import errors

# The seed's conversation: (node, status, tokens_used, message, skills_injected)
SKILLS = ["spacing-calculation", "offset-well-analysis"]
PIPELINE = [
    ("system_prompt_node", "running", 412, None, []),
    ("memory_node", "running", 96, None, []),
    ("initial_llm_call", "running", 1234,
     {"role": "assistant", "content": "I'll calculate the spacing between Permian Basin 12H and every "
      "offset well within 1,200 ft, then check the lease-line distance against Rule 37."}, []),
    ("tool_node", "running", 0,
     {"role": "tool", "content": "offset_well_search(radius_ft=1200): Smith #3, Smith #4, Jones Unit 1, Baker A-2"}, []),
    ("initial_llm_call", "running", 1710,
     {"role": "assistant", "content": "Four offset wells are within 1,200 ft; the closest is Smith #3 at 890 ft."}, []),
    ("skill_select_node", "running", 88, None, []),
    ("skill_inject_node", "running", 640, None, SKILLS),
    ("approval_node", "running", 0, None, []),
    ("synthesis_llm_call", "completed", 1450,
     {"role": "assistant", "content": "Permian Basin 12H sits 330 ft from the east lease line, short of the "
      "467 ft Rule 37 minimum, so a spacing exception is required. Four offset wells lie within 1,200 ft "
      "(closest: Smith #3 at 890 ft); their three operators must be notified."}, SKILLS),
    ("output_format", "completed", 0, None, SKILLS),
]
USD_PER_TOKEN = 0.000008
FAIL_ERROR = "Budget exceeded: 150000 tokens"

stop = threading.Event()


def log(msg):
    print(f"worker: {msg}", file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description="aegis reference agent worker (scripted pipeline)")
    p.add_argument("--dsn", default=os.environ.get("DATABASE_URL", ""),
                   help="libpq connection string (default: $DATABASE_URL, else libpq's PG* variables)")
    p.add_argument("--agent-type", default="rule_37", help="agent type to serve (default rule_37)")
    p.add_argument("--worker", default=f"{socket.gethostname()}:{os.getpid()}",
                   help="this worker's name, unique per process (default host:pid)")
    p.add_argument("--step-seconds", type=float, default=0.5,
                   help="time each step 'thinks' before its node_end (default 0.5; keep it below the lease)")
    p.add_argument("--fail-after", type=int, default=None, metavar="N",
                   help="fail each run with the seed's budget error after N steps")
    p.add_argument("--wait-ms", type=int, default=2000,
                   help="aegis.wait_run timeout; also the longest SIGTERM waits while idle (default 2000)")
    p.add_argument("--max-runs", type=int, default=0, help="exit after this many runs (default 0: never)")
    a = p.parse_args()
    if a.fail_after is not None and a.fail_after < 0:
        p.error("--fail-after must be >= 0")
    if a.step_seconds < 0 or not 0 <= a.wait_ms <= 60000 or a.max_runs < 0:
        p.error("--step-seconds and --max-runs must be >= 0, --wait-ms 0 to 60000")
    return a


def steps_done(conn, run_id, conversation_id):
    """node_end events already in the conversation since the request (an earlier attempt's)."""
    return conn.execute(
        "SELECT count(*) FROM aegis.read_stream('conversation', %s, %s::bigint, 1000) WHERE event_type = 'node_end'",
        (conversation_id, run_id)).fetchone()[0]


def publish_step(conn, args, run_id, conversation_id, step):
    node, status, tokens, message, skills = step
    with conn.transaction():
        conn.execute("SELECT aegis.heartbeat_run(%s::bigint, %s)", (run_id, args.worker))
        conn.execute("SELECT aegis.publish_node_end(%s, %s, %s, %s::int, %s::jsonb, %s::text[])",
                     (conversation_id, node, status, tokens,
                      psycopg.types.json.Jsonb(message) if message else None, skills))


def run_one(conn, args, run_id, conversation_id, message, attempt):
    """One claimed run to its end; False when SIGTERM released it."""
    first = steps_done(conn, run_id, conversation_id)
    log(f"run {run_id} conversation={conversation_id} attempt={attempt} message={message!r} resume_at={first}")
    for i in range(first, len(PIPELINE)):
        if args.fail_after is not None and i >= args.fail_after:
            conn.execute("SELECT aegis.fail_run(%s::bigint, %s, %s)", (run_id, args.worker, FAIL_ERROR))
            log(f"run {run_id} failed after {i} steps")
            return True
        if stop.wait(args.step_seconds):
            conn.execute("SELECT aegis.release_run(%s::bigint, %s)", (run_id, args.worker))
            log(f"run {run_id} released (SIGTERM)")
            return False
        publish_step(conn, args, run_id, conversation_id, PIPELINE[i])
        log(f"run {run_id} node_end {PIPELINE[i][0]}")
    tokens = sum(s[2] for s in PIPELINE)
    conn.execute("SELECT aegis.finish_run(%s::bigint, %s, %s, 'completed', %s::int, %s::numeric, %s::text[])",
                 (run_id, args.worker, f"exec-{run_id}", tokens, round(tokens * USD_PER_TOKEN, 4), SKILLS))
    log(f"run {run_id} done")
    return True


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    conn = psycopg.connect(args.dsn, autocommit=True, application_name="aegis reference worker")
    log(f"{args.worker} serving agent type {args.agent_type}")
    runs = 0
    while not stop.is_set():
        row = conn.execute(
            "SELECT run_id, conversation_id, message, attempt FROM aegis.wait_run(%s, %s, %s::int)",
            (args.agent_type, args.worker, args.wait_ms)).fetchone()
        if row is None:
            continue
        try:
            if not run_one(conn, args, *row):
                break
        except errors.ObjectNotInPrerequisiteState as e:    # 55000: the lease was lost
            log(f"run {row[0]} lost: {e.diag.message_primary}; {e.diag.message_detail}")
        runs += 1
        if args.max_runs and runs >= args.max_runs:
            break
    conn.close()
    log("stopped")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except psycopg.OperationalError as e:      # the server went away: a supervisor restarts us
        log(f"database connection lost: {str(e).strip()}")
        sys.exit(1)
