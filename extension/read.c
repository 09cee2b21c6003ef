/*-------------------------------------------------------------------------
 * read.c
 *	  The readers: aegis.safe_position, read_all, wait_all, read_stream,
 *	  read_topic_events and stream_position.  Each computes the safe position
 *	  first and only then runs its query (whose fresh READ COMMITTED snapshot
 *	  therefore sees every commit the position covers), and never returns an
 *	  event above it.  Plans are prepared once and kept.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "aegis.h"

PG_FUNCTION_INFO_V1(aegis_safe_position);
PG_FUNCTION_INFO_V1(aegis_read_all);
PG_FUNCTION_INFO_V1(aegis_wait_all);
PG_FUNCTION_INFO_V1(aegis_read_stream);
PG_FUNCTION_INFO_V1(aegis_read_topic_events);
PG_FUNCTION_INFO_V1(aegis_stream_position);

#define READ_MAX_EVENTS 100000
#define WAIT_MAX_MS 60000
#define EVENT_COLUMNS "id, stream_kind, stream_id, event_type, payload, topic, key, headers, created_at"

typedef enum ReadPlan
{
	PLAN_ALL,
	PLAN_STREAM,
	PLAN_TOPIC,
	PLAN_POSITION,
	PLAN_COUNT
} ReadPlan;

#define SQL_ALL "SELECT " EVENT_COLUMNS " FROM aegis.events " \
	"WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"
/*
 * Stream readers compare rows against events_stream_idx's key instead of
 * "stream_kind = $4 AND stream_id = $5 AND id > $1": the generic plan of
 * that form, with few streams in the statistics, walks the primary key from
 * $1 and filters (measured: 3.3 ms for a new stream beside 9,300 events of
 * three others, every replay of a new stream).  Row bounds and the row
 * order can only be served by (stream_kind, stream_id, id).
 */
#define STREAM_RANGE "(stream_kind, stream_id, id) > ($4, $5, $1) " \
	"AND (stream_kind, stream_id, id) <= ($4, $5, $2)"
#define SQL_STREAM "SELECT " EVENT_COLUMNS " FROM aegis.events " \
	"WHERE " STREAM_RANGE " ORDER BY stream_kind, stream_id, id LIMIT $3"
#define SQL_TOPIC "SELECT " EVENT_COLUMNS " FROM aegis.events " \
	"WHERE topic IS NOT NULL AND id > $1 AND id <= $2 ORDER BY id LIMIT $3"
#define SQL_POSITION "SELECT id FROM aegis.events " \
	"WHERE " STREAM_RANGE " ORDER BY stream_kind DESC, stream_id DESC, id DESC LIMIT $3"

static const char *const plan_sql[PLAN_COUNT] = {SQL_ALL, SQL_STREAM, SQL_TOPIC, SQL_POSITION};

static SPIPlanPtr plans[PLAN_COUNT];

static SPIPlanPtr
read_plan(ReadPlan which)
{
	Oid			types[5] = {INT8OID, INT8OID, INT4OID, TEXTOID, TEXTOID};

	if (plans[which] == NULL)
	{
		/*
		 * A generic plan from the first call: custom plans for the first
		 * calls of a session could sort every remaining row instead of
		 * walking the id-ordered index and stopping at the limit.
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(plan_sql[which], 5, types,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "could not prepare aegis reader: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		plans[which] = plan;
	}
	return plans[which];
}

static void
check_read_args(int64 after, int32 max_events)
{
	if (after < 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("after must be >= 0, got " INT64_FORMAT, after),
				 errhint("Pass 0 to read from the beginning, or the id of the last event read.")));
	if (max_events < 1 || max_events > READ_MAX_EVENTS)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("max_events must be between 1 and %d, got %d", READ_MAX_EVENTS, max_events),
				 errhint("Read in batches and pass the last id as after.")));
}

static void
check_stream_kind(text *kind)
{
	char	   *k = text_to_cstring(kind);

	if (strcmp(k, "workspace") != 0 && strcmp(k, "conversation") != 0 &&
		strcmp(k, "topic") != 0 && strcmp(k, "run") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stream_kind must be one of workspace, conversation, topic, run, got \"%s\"", k),
				 errhint("A stream is a kind and an id, e.g. ('workspace', 'chk-1').")));
}

/*
 * Runs one reader plan for (after, safe].  Rows go to the SRF's tuplestore
 * (set up by the caller) when rsinfo is given; otherwise the first column of
 * the first row goes to *value.  Returns the number of rows.
 */
static uint64
read_exec(ReadPlan which, int64 after, int64 safe, int32 max_events, text *kind,
		  text *stream_id, ReturnSetInfo *rsinfo, int64 *value)
{
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	uint64		n;
	int			rc;

	args[0] = Int64GetDatum(after);
	args[1] = Int64GetDatum(safe);
	args[2] = Int32GetDatum(max_events);
	args[3] = kind ? PointerGetDatum(kind) : (Datum) 0;
	args[4] = stream_id ? PointerGetDatum(stream_id) : (Datum) 0;
	if (!kind)
		nulls[3] = nulls[4] = 'n';

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute_plan(read_plan(which), args, nulls, false, rsinfo ? 0 : 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "aegis reader failed: %s", SPI_result_code_string(rc));
	n = SPI_processed;
	if (rsinfo)
	{
		for (uint64 i = 0; i < n; i++)
			tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	}
	else if (n == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		*value = isnull ? 0 : DatumGetInt64(d);
	}
	SPI_finish();
	return n;
}

/*
 * Runs one reader plan after computing the safe position (before the
 * query's snapshot).  Materialized results go to the SRF's tuplestore.
 */
static int64
read_run(FunctionCallInfo fcinfo, ReadPlan which, int64 after, int32 max_events,
		 text *kind, text *stream_id, bool materialize)
{
	int64		result = 0;

	order_check_reader_isolation();
	check_read_args(after, max_events);
	if (materialize)
		InitMaterializedSRF(fcinfo, 0);
	read_exec(which, after, order_safe_position(), max_events, kind, stream_id,
			  materialize ? (ReturnSetInfo *) fcinfo->resultinfo : NULL, &result);
	return result;
}

/* aegis.safe_position(): every event at or below it is final */
Datum
aegis_safe_position(PG_FUNCTION_ARGS)
{
	order_check_reader_isolation();
	PG_RETURN_INT64(order_safe_position());
}

/* aegis.read_all(after, max_events) */
Datum
aegis_read_all(PG_FUNCTION_ARGS)
{
	read_run(fcinfo, PLAN_ALL, PG_GETARG_INT64(0), PG_GETARG_INT32(1), NULL, NULL, true);
	return (Datum) 0;
}

/*
 * aegis.wait_all(after, max_events, timeout_ms): read_all that, when nothing
 * after `after` is safe yet, sleeps until a publishing transaction ends and
 * reads again, until it has rows or timeout_ms has passed (then it returns
 * none).  A live reader's long poll: one round trip per batch, woken
 * directly by the commit instead of through NOTIFY.
 */
Datum
aegis_wait_all(PG_FUNCTION_ARGS)
{
	int64		after = PG_GETARG_INT64(0);
	int32		max_events = PG_GETARG_INT32(1);
	int32		timeout_ms = PG_GETARG_INT32(2);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz deadline;
	int64		seen = after;
	int64		unused;

	order_check_reader_isolation();
	check_read_args(after, max_events);
	if (timeout_ms < 0 || timeout_ms > WAIT_MAX_MS)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("timeout_ms must be between 0 and %d, got %d", WAIT_MAX_MS, timeout_ms),
				 errdetail("The waiting statement holds its snapshot, which holds back vacuum."),
				 errhint("Call aegis.wait_all again after an empty result.")));
	InitMaterializedSRF(fcinfo, 0);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	for (;;)
	{
		int64		safe = order_wait_for_position(seen, deadline);

		if (safe <= seen)
			break;				/* timed out */
		/* positions are cluster-wide: another database's commit reads nothing */
		if (read_exec(PLAN_ALL, after, safe, max_events, NULL, NULL, rsinfo, &unused) > 0)
			break;
		seen = safe;
	}
	return (Datum) 0;
}

/* aegis.read_stream(stream_kind, stream_id, after, max_events) */
Datum
aegis_read_stream(PG_FUNCTION_ARGS)
{
	check_stream_kind(PG_GETARG_TEXT_PP(0));
	read_run(fcinfo, PLAN_STREAM, PG_GETARG_INT64(2), PG_GETARG_INT32(3),
			 PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), true);
	return (Datum) 0;
}

/* aegis.read_topic_events(after, max_events): the Kafka drain's reader */
Datum
aegis_read_topic_events(PG_FUNCTION_ARGS)
{
	read_run(fcinfo, PLAN_TOPIC, PG_GETARG_INT64(0), PG_GETARG_INT32(1), NULL, NULL, true);
	return (Datum) 0;
}

/* aegis.stream_position(stream_kind, stream_id): the stream's latest safe id, 0 if none */
Datum
aegis_stream_position(PG_FUNCTION_ARGS)
{
	check_stream_kind(PG_GETARG_TEXT_PP(0));
	PG_RETURN_INT64(read_run(fcinfo, PLAN_POSITION, 0, 1, PG_GETARG_TEXT_PP(0),
							 PG_GETARG_TEXT_PP(1), false));
}
