/*-------------------------------------------------------------------------
 * runs.c
 *	  Agent runs, the parts in C: claiming queued runs (aegis.claim_run,
 *	  FOR UPDATE SKIP LOCKED through one kept SPI plan) and waiting for one
 *	  (aegis.wait_run).  A transaction that makes a run claimable (a request,
 *	  a run back in the queue) calls aegis.wake_run_waiters(); its commit
 *	  callback bumps a counter in shared memory and broadcasts a condition
 *	  variable, so waiting workers sleep without polling and wake on that
 *	  commit.  The rest of the run protocol (leases, finish, the clock) is
 *	  SQL in the 0.3.0 script.  Settings: aegis.require_configured_agents,
 *	  aegis.max_open_runs.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "aegis.h"

PG_FUNCTION_INFO_V1(aegis_claim_run);
PG_FUNCTION_INFO_V1(aegis_wait_run);
PG_FUNCTION_INFO_V1(aegis_wake_run_waiters);
PG_FUNCTION_INFO_V1(aegis_validate_run_request);
PG_FUNCTION_INFO_V1(aegis_finish_run);
PG_FUNCTION_INFO_V1(aegis_fail_run);

#define RUNS_MAX_CLAIM 1000
#define RUNS_WAIT_MAX_MS 60000
#define RUNS_WORKER_MAX 200

typedef struct RunsShared
{
	pg_atomic_uint64 wakeups;	/* commits that made a run claimable */
	pg_atomic_uint32 waiters;	/* backends sleeping in aegis.wait_run */
	ConditionVariable queued;	/* broadcast by those commits */
} RunsShared;

bool		aegis_require_configured_agents = true;
int			aegis_max_open_runs = 1;

static RunsShared *runs = NULL;
static bool xact_wakes_waiters = false;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr finish_plan = NULL;
static SPIPlanPtr fail_plan = NULL;
static SPIPlanPtr held_plan = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Oldest first among the agent type's queued runs, skipping rows another
 * claimer holds; the lease comes from aegis.agents (30 s without a row).
 * clock_timestamp(): wait_run claims long after its transaction started.
 * The shape of the bare SKIP LOCKED queue (no CTE, no join): the locked
 * ids as an array, the UPDATE by primary key; runs_claim puts the rows in
 * run_id order.
 */
#define SQL_CLAIM \
	"UPDATE aegis.run_requests r " \
	"  SET state = 'running', worker = $2, attempt = r.attempt + 1, " \
	"      started_at = coalesce(r.started_at, pg_catalog.clock_timestamp()), " \
	"      claimed_at = pg_catalog.clock_timestamp(), heartbeat_at = pg_catalog.clock_timestamp(), " \
	"      lease_expires_at = pg_catalog.clock_timestamp() + coalesce(" \
	"        (SELECT a.lease FROM aegis.agents a WHERE a.agent_type = $1), '30 s') " \
	"  WHERE r.event_id = ANY (ARRAY(SELECT q.event_id FROM aegis.run_requests q " \
	"    WHERE coalesce(q.agent_type, 'default') = $1 AND q.state = 'queued' " \
	"    ORDER BY q.event_id LIMIT $3 FOR UPDATE SKIP LOCKED)) " \
	"  RETURNING r.event_id, r.conversation_id, r.message, r.agent_id, " \
	"            coalesce(r.agent_type, 'default'), r.attempt, r.requested_at"

/*
 * Ending a run, one statement: the CTE e reads the run with the holder's
 * checks and publishes its end event once (a CTE with a volatile function
 * is evaluated once, and an UPDATE re-checking a concurrently changed row
 * reuses e's row instead of evaluating it again: runs_lease.spec), and the
 * row is updated only while the worker still holds it.  No row: the caller
 * raises why (aegis.runs_held), which rolls the event back with the rest.
 */
#define SQL_END_HELD \
	"  FROM aegis.run_requests r " \
	"  WHERE r.event_id = $1 AND r.state = 'running' AND r.worker = $2 " \
	"    AND r.lease_expires_at > pg_catalog.clock_timestamp()) "
#define SQL_END_UPDATE \
	"UPDATE aegis.run_requests r SET finished_at = pg_catalog.clock_timestamp(), " \
	"  lease_expires_at = NULL, end_event_id = e.id, "
#define SQL_END_WHERE \
	"  FROM e WHERE r.event_id = $1 AND r.state = 'running' AND r.worker = $2 " \
	"    AND r.lease_expires_at > pg_catalog.clock_timestamp() " \
	"RETURNING r.end_event_id"
#define SQL_FINISH \
	"WITH e AS (SELECT aegis.publish_conversation_event(r.conversation_id, 'done', NULL, " \
	"  pg_catalog.jsonb_build_object('execution_id', $3, 'status', $4, 'tokens_used', $5, " \
	"    'cost_usd', $6, 'skills_injected', pg_catalog.to_jsonb($7))) AS id " \
	SQL_END_HELD \
	SQL_END_UPDATE "state = 'done' " SQL_END_WHERE
#define SQL_FAIL \
	"WITH e AS (SELECT aegis.publish_conversation_event(r.conversation_id, 'error', NULL, " \
	"  pg_catalog.jsonb_build_object('error', $3)) AS id " \
	SQL_END_HELD \
	SQL_END_UPDATE "state = 'failed', error = $3 " SQL_END_WHERE
/* raises why the worker does not hold the run (unknown, ended, lost) */
#define SQL_HELD "SELECT 1 FROM aegis.runs_held($1, $2)"

static void
runs_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(RunsShared)));
}

static void
runs_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	runs = ShmemInitStruct("aegis_events runs", sizeof(RunsShared), &found);
	if (!found)
	{
		pg_atomic_init_u64(&runs->wakeups, 0);
		pg_atomic_init_u32(&runs->waiters, 0);
		ConditionVariableInit(&runs->queued);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * After the commit is visible (commit callbacks run after the proc array
 * lets go of the transaction): bump the counter, then wake the sleepers.
 * The barrier pairs with the waiter's increment of waiters.  Must not fail.
 */
static void
runs_xact_callback(XactEvent event, void *arg)
{
	if (!xact_wakes_waiters)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			xact_wakes_waiters = false;
			if (runs == NULL)
				return;
			pg_atomic_fetch_add_u64(&runs->wakeups, 1);
			pg_memory_barrier();
			if (pg_atomic_read_u32(&runs->waiters) > 0)
				ConditionVariableBroadcast(&runs->queued);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			xact_wakes_waiters = false;
			break;
		default:
			break;
	}
}

static void
runs_define_settings(void)
{
	DefineCustomBoolVariable("aegis.require_configured_agents",
							 "Refuse run requests for agent types without an aegis.configure_agent row.",
							 "Requests without an agent type are for agent type 'default'.",
							 &aegis_require_configured_agents,
							 true, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("aegis.max_open_runs",
							"Queued or running runs one conversation may have at once.",
							NULL,
							&aegis_max_open_runs,
							1, 1, 1000, PGC_SUSET, 0, NULL, NULL, NULL);
}

/* From _PG_init: settings always, shared memory and callbacks when preloaded. */
void
runs_init(void)
{
	runs_define_settings();
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = runs_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = runs_shmem_startup;
	RegisterXactCallback(runs_xact_callback, NULL);
}

/* aegis.wake_run_waiters(): wake aegis.wait_run callers when this transaction commits */
Datum
aegis_wake_run_waiters(PG_FUNCTION_ARGS)
{
	order_require_preload();
	xact_wakes_waiters = true;
	PG_RETURN_VOID();
}

/*
 * aegis.validate_run_request(conversation_id, message, agent_id, agent_type):
 * the checks of publish_run_request, so that aegis.request_run reports bad
 * input before any rule about open runs or configured agents.
 */
Datum
aegis_validate_run_request(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("run request needs conversation_id and message"),
				 errhint("Pass ?message=… on the conversation stream.")));
	validate_stream_id("conversation_id", PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(3))
		validate_stream_id("agent_type", PG_GETARG_TEXT_PP(3));
	if (!PG_ARGISNULL(2))
		validate_stream_id("agent_id", PG_GETARG_TEXT_PP(2));
	validate_size("message", VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}

static void
runs_check_arg(FunctionCallInfo fcinfo, int n, const char *name, const char *hint)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name),
				 errhint("%s", hint)));
}

static void
runs_check_args(FunctionCallInfo fcinfo, const char *third)
{
	int			len;

	runs_check_arg(fcinfo, 0, "agent_type",
					"Pass the agent type this worker serves ('default' for runs requested without one).");
	runs_check_arg(fcinfo, 1, "worker", "Name the worker uniquely, e.g. host:pid.");
	runs_check_arg(fcinfo, 2, third, "Pass a number.");
	validate_stream_id("agent_type", PG_GETARG_TEXT_PP(0));
	len = VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(1));
	if (len < 1 || len > RUNS_WORKER_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_LENGTH_MISMATCH),
				 errmsg("worker must be 1 to %d characters, got %d", RUNS_WORKER_MAX, len),
				 errhint("Name the worker uniquely, e.g. host:pid.")));
}

/* A kept generic plan of sql (see runs_claim for why generic). */
static SPIPlanPtr
runs_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/* qsort: claimed rows by run_id (their first column, never null) */
static int
runs_cmp_run_id(const void *a, const void *b)
{
	HeapTuple	ta = *(const HeapTuple *) a;
	HeapTuple	tb = *(const HeapTuple *) b;
	bool		isnull;
	int64		ia = DatumGetInt64(SPI_getbinval(ta, SPI_tuptable->tupdesc, 1, &isnull));
	int64		ib = DatumGetInt64(SPI_getbinval(tb, SPI_tuptable->tupdesc, 1, &isnull));

	return ia < ib ? -1 : ia > ib ? 1 : 0;
}

/*
 * Runs the claim plan; the claimed rows go to the SRF's tuplestore.
 * Returns how many runs were claimed.
 */
static uint64
runs_claim(text *agent_type, text *worker, int32 max_runs, ReturnSetInfo *rsinfo)
{
	Datum		args[3];
	Oid			types[3] = {TEXTOID, TEXTOID, INT4OID};
	uint64		n;
	int			rc;

	args[0] = PointerGetDatum(agent_type);
	args[1] = PointerGetDatum(worker);
	args[2] = Int32GetDatum(max_runs);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * A generic plan (runs_plan): the custom plans the plan cache would
	 * otherwise pick (LIMIT $3 makes the generic one look dearer) were
	 * planned anew on every call, which cost as much as the claim itself.
	 */
	rc = SPI_execute_plan(runs_plan(&claim_plan, SQL_CLAIM, 3, types),
						  args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "run claim failed: %s", SPI_result_code_string(rc));
	n = SPI_processed;
	if (n > 1)
		qsort(SPI_tuptable->vals, n, sizeof(HeapTuple), runs_cmp_run_id);
	for (uint64 i = 0; i < n; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	SPI_finish();
	return n;
}

/*
 * Runs an end-of-run plan (SQL_FINISH / SQL_FAIL) with the function's
 * arguments; returns the end event's id.  When the worker does not hold
 * the run, aegis.runs_held raises why (55000, 22023, 22004); should it
 * find the run held after all (it cannot: the UPDATE waited for any
 * concurrent change), the error is raised here.
 */
static int64
runs_end(FunctionCallInfo fcinfo, SPIPlanPtr *slot, const char *sql,
		 int nargs, Oid *types)
{
	Datum		args[7];
	char		nulls[7];
	int64		event_id = 0;
	bool		isnull = true;
	int			rc;

	Assert(nargs <= 7 && nargs == PG_NARGS());
	for (int i = 0; i < nargs; i++)
	{
		args[i] = PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_plan(runs_plan(slot, sql, nargs, types), args, nulls, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "ending the run failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
		event_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
	{
		Oid			held_types[2] = {INT8OID, TEXTOID};

		rc = SPI_execute_plan(runs_plan(&held_plan, SQL_HELD, 2, held_types),
							  args, nulls, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "checking the run failed: %s", SPI_result_code_string(rc));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("run " INT64_FORMAT " is not held by worker \"%s\"",
						PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0),
						PG_ARGISNULL(1) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(1))),
				 errhint("Stop working on this run: another attempt may be under way.")));
	}
	SPI_finish();
	return event_id;
}

/*
 * aegis.finish_run(run_id, worker, execution_id, status, tokens_used,
 * cost_usd, skills_injected): publishes the seed's done event and marks the
 * run done, one statement of the caller's transaction; the done event's id.
 */
Datum
aegis_finish_run(PG_FUNCTION_ARGS)
{
	Oid			types[7] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, INT4OID,
	NUMERICOID, TEXTARRAYOID};

	PG_RETURN_INT64(runs_end(fcinfo, &finish_plan, SQL_FINISH, 7, types));
}

/*
 * aegis.fail_run(run_id, worker, error): publishes the seed's error event
 * and fails the run for good, one statement; the error event's id.
 */
Datum
aegis_fail_run(PG_FUNCTION_ARGS)
{
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};

	PG_RETURN_INT64(runs_end(fcinfo, &fail_plan, SQL_FAIL, 3, types));
}

/* A claim must see commits after the statement began: READ COMMITTED. */
static void
runs_check_isolation(void)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("aegis run claims must run at READ COMMITTED isolation"),
				 errdetail("At %s the snapshot predates the runs requested since the transaction began.",
						   IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errhint("Claim runs in a READ COMMITTED transaction.")));
}

/* aegis.claim_run(agent_type, worker, max_runs): the claimed runs, oldest first */
Datum
aegis_claim_run(PG_FUNCTION_ARGS)
{
	int32		max_runs;

	runs_check_args(fcinfo, "max_runs");
	max_runs = PG_GETARG_INT32(2);
	if (max_runs < 1 || max_runs > RUNS_MAX_CLAIM)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("max_runs must be between 1 and %d, got %d", RUNS_MAX_CLAIM, max_runs),
				 errhint("Claim as many runs as the worker can run at once.")));
	order_require_preload();
	runs_check_isolation();
	InitMaterializedSRF(fcinfo, 0);
	runs_claim(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), max_runs,
			   (ReturnSetInfo *) fcinfo->resultinfo);
	return (Datum) 0;
}

/*
 * Sleeps until a commit made a run claimable after `seen` was read, or the
 * deadline passes.  Returns false on timeout.  Interruptible.
 */
static bool
runs_sleep(uint64 seen, TimestampTz deadline)
{
	bool		woken = false;

	for (;;)
	{
		long		remaining;

		CHECK_FOR_INTERRUPTS();
		if (pg_atomic_read_u64(&runs->wakeups) != seen)
		{
			woken = true;
			break;
		}
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
			break;
		/* the first call only prepares the sleep: the loop rechecks */
		ConditionVariableTimedSleep(&runs->queued, remaining, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return woken;
}

/*
 * aegis.wait_run(agent_type, worker, timeout_ms): claim_run of one run that,
 * when none is queued, sleeps until a commit queues one (a request, a run
 * back from an expired lease) and claims again, until it has a run or
 * timeout_ms passed (then it returns none).  The counter is read before the
 * claim's snapshot: a run committed after that snapshot bumps it later.
 */
Datum
aegis_wait_run(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		timeout_ms;
	TimestampTz deadline;

	runs_check_args(fcinfo, "timeout_ms");
	timeout_ms = PG_GETARG_INT32(2);
	if (timeout_ms < 0 || timeout_ms > RUNS_WAIT_MAX_MS)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("timeout_ms must be between 0 and %d, got %d", RUNS_WAIT_MAX_MS, timeout_ms),
				 errdetail("The waiting statement holds its snapshot, which holds back vacuum."),
				 errhint("Call aegis.wait_run again after an empty result.")));
	order_require_preload();
	runs_check_isolation();
	InitMaterializedSRF(fcinfo, 0);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);

	pg_atomic_fetch_add_u32(&runs->waiters, 1);
	PG_TRY();
	{
		for (;;)
		{
			uint64		seen;

			pg_memory_barrier();
			seen = pg_atomic_read_u64(&runs->wakeups);
			if (runs_claim(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), 1, rsinfo) > 0)
				break;
			if (!runs_sleep(seen, deadline))
				break;
		}
	}
	PG_FINALLY();
	{
		pg_atomic_fetch_sub_u32(&runs->waiters, 1);
	}
	PG_END_TRY();
	return (Datum) 0;
}
