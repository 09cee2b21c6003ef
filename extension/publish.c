/*-------------------------------------------------------------------------
 * publish.c
 *	  The SQL-callable publish functions: aegis.publish, publish_event,
 *	  ensure_topic, publish_workspace_event, publish_conversation_event,
 *	  publish_run_request and the validate_* functions.  Each checks its
 *	  arguments, validates the payload and stores one event in the caller's
 *	  transaction, returning the event's position.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "aegis.h"

PG_FUNCTION_INFO_V1(aegis_publish);
PG_FUNCTION_INFO_V1(aegis_publish_event);
PG_FUNCTION_INFO_V1(aegis_ensure_topic);
PG_FUNCTION_INFO_V1(aegis_publish_workspace_event);
PG_FUNCTION_INFO_V1(aegis_publish_conversation_event);
PG_FUNCTION_INFO_V1(aegis_publish_run_request);
PG_FUNCTION_INFO_V1(aegis_validate_workspace_event);
PG_FUNCTION_INFO_V1(aegis_validate_conversation_event);

/* A required argument: NULL is an error naming it. */
static void
require_arg(FunctionCallInfo fcinfo, int n, const char *name, const char *hint)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name),
				 errhint("%s", hint)));
}

static text *
arg_text_or_null(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : PG_GETARG_TEXT_PP(n);
}

static Jsonb *
arg_headers(FunctionCallInfo fcinfo, int n)
{
	Jsonb	   *headers;

	if (PG_ARGISNULL(n))
		return NULL;
	headers = PG_GETARG_JSONB_P(n);
	validate_headers(headers);
	return headers;
}

static void
check_event_type_text(text *t)
{
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len < 1 || len > 200)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_LENGTH_MISMATCH),
				 errmsg("event_type must be 1 to 200 characters, got %d", len),
				 errhint("Name what happened, e.g. 'wells_scraped'.")));
}

static Size
event_size(Jsonb *payload, text *key, Jsonb *headers)
{
	Size		size = VARSIZE(payload);

	if (key != NULL)
		size += VARSIZE_ANY_EXHDR(key);
	if (headers != NULL)
		size += VARSIZE(headers);
	return size;
}

/* event_type of a plain publish: the value's own "event_type" if it is a string. */
static text *
value_event_type(Jsonb *value)
{
	JsonbValue	v;

	if (JB_ROOT_IS_OBJECT(value) &&
		getKeyJsonValueFromContainer(&value->root, "event_type", 10, &v) != NULL &&
		v.type == jbvString && v.val.string.len > 0 && v.val.string.len <= 200)
		return cstring_to_text_with_len(v.val.string.val, v.val.string.len);
	return cstring_to_text("message");
}

static int64
publish_to_topic(text *topic, text *event_type, Jsonb *value, text *key, Jsonb *headers)
{
	AegisEvent	ev;

	validate_topic_name(topic);
	validate_size("event", event_size(value, key, headers));
	ev.stream_kind = "topic";
	ev.stream_id = topic;
	ev.event_type = event_type;
	ev.payload = value;
	ev.topic = topic;
	ev.key = key;
	ev.headers = headers;
	return store_publish(&ev);
}

/* aegis.publish(topic, value jsonb, key, headers) */
Datum
aegis_publish(PG_FUNCTION_ARGS)
{
	Jsonb	   *value;

	require_arg(fcinfo, 0, "topic", "Name the Kafka topic, e.g. 'entity-extraction-worker'.");
	require_arg(fcinfo, 1, "value", "Pass the message as jsonb.");
	value = PG_GETARG_JSONB_P(1);
	PG_RETURN_INT64(publish_to_topic(PG_GETARG_TEXT_PP(0), value_event_type(value), value,
									 arg_text_or_null(fcinfo, 2), arg_headers(fcinfo, 3)));
}

/* aegis.publish_event(topic, event_type, data, key, headers): the seed's envelope */
Datum
aegis_publish_event(PG_FUNCTION_ARGS)
{
	text	   *event_type;
	JsonbParseState *state = NULL;
	Jsonb	   *data;

	require_arg(fcinfo, 0, "topic", "Name the Kafka topic, e.g. 'entity-extraction-worker'.");
	require_arg(fcinfo, 1, "event_type", "Name what happened, e.g. 'wells_scraped'.");
	require_arg(fcinfo, 2, "data", "Pass the event's data as jsonb (use '{}' for none).");
	event_type = PG_GETARG_TEXT_PP(1);
	data = PG_GETARG_JSONB_P(2);
	check_event_type_text(event_type);

	payload_begin(&state);
	payload_text(&state, "event_type", event_type);
	payload_jsonb(&state, "data", data);

	PG_RETURN_INT64(publish_to_topic(PG_GETARG_TEXT_PP(0), event_type,
									 payload_end(&state),
									 arg_text_or_null(fcinfo, 3), arg_headers(fcinfo, 4)));
}

/* aegis.ensure_topic(topic, partitions, replication_factor) */
Datum
aegis_ensure_topic(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[3];
	int32		partitions,
				rf;
	int			rc;

	require_arg(fcinfo, 0, "topic", "Name the Kafka topic.");
	require_arg(fcinfo, 1, "partitions", "Kafka's default here is 3.");
	require_arg(fcinfo, 2, "replication_factor", "Use 1 on a single broker.");
	validate_topic_name(PG_GETARG_TEXT_PP(0));
	partitions = PG_GETARG_INT32(1);
	rf = PG_GETARG_INT32(2);
	if (partitions < 1 || partitions > 10000)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("partitions must be between 1 and 10000, got %d", partitions),
				 errhint("The seed's topics use 3.")));
	if (rf < 1 || rf > 32767)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("replication_factor must be between 1 and 32767, got %d", rf),
				 errhint("It cannot exceed the number of brokers; use 1 on a single broker.")));

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	if (plan == NULL)
	{
		Oid			types[3] = {TEXTOID, INT4OID, INT4OID};

		plan = SPI_prepare("INSERT INTO aegis.topics AS t (topic, partitions, replication_factor) "
						   "VALUES ($1, $2, $3) ON CONFLICT (topic) DO UPDATE SET topic = t.topic "
						   "RETURNING t.partitions, t.replication_factor", 3, types);
		if (plan == NULL)
			elog(ERROR, "could not prepare ensure_topic: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	args[0] = PG_GETARG_DATUM(0);
	args[1] = Int32GetDatum(partitions);
	args[2] = Int32GetDatum(rf);
	rc = SPI_execute_plan(plan, args, NULL, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "ensure_topic failed: %s", SPI_result_code_string(rc));
	{
		bool		isnull;
		int32		have_p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		int32		have_rf = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

		if (have_p != partitions || have_rf != rf)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("topic \"%s\" is already declared with %d partitions and replication factor %d",
							text_to_cstring(PG_GETARG_TEXT_PP(0)), have_p, have_rf),
					 errdetail("Asked for %d partitions and replication factor %d.", partitions, rf),
					 errhint("A topic's declaration is fixed once made; use another topic name.")));
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/* Adds "event_type": type to an object payload that lacks it. */
static Jsonb *
with_event_type(Jsonb *payload, const char *type)
{
	return payload_add_string(payload, "event_type", type);
}

/* aegis.publish_workspace_event(checklist_id, event_type, payload) */
Datum
aegis_publish_workspace_event(PG_FUNCTION_ARGS)
{
	AegisEvent	ev;
	const char *type;
	Jsonb	   *payload;

	require_arg(fcinfo, 0, "checklist_id", "Pass the checklist the workspace belongs to.");
	require_arg(fcinfo, 1, "event_type", "Pass one of the eight workspace event types.");
	require_arg(fcinfo, 2, "payload", "Pass the event's fields as a jsonb object.");
	validate_stream_id("checklist_id", PG_GETARG_TEXT_PP(0));
	type = validate_workspace_type_name(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	payload = PG_GETARG_JSONB_P(2);
	validate_size("payload", VARSIZE(payload));
	validate_workspace_event(type, payload);

	ev.stream_kind = "workspace";
	ev.stream_id = PG_GETARG_TEXT_PP(0);
	/* the argument is the type's name exactly: validate_workspace_type_name matched it */
	ev.event_type = PG_GETARG_TEXT_PP(1);
	ev.payload = with_event_type(payload, type);
	ev.topic = NULL;
	ev.key = NULL;
	ev.headers = NULL;
	PG_RETURN_INT64(store_publish(&ev));
}

static Jsonb *
conversation_payload(const char *event, const char *node, Jsonb *data)
{
	JsonbParseState *state = NULL;

	payload_begin(&state);
	payload_string(&state, "event", event, -1);
	if (node != NULL)
		payload_string(&state, "node", node, -1);
	payload_jsonb(&state, "data", data);
	return payload_end(&state);
}

/* aegis.publish_conversation_event(conversation_id, event, node, data) */
Datum
aegis_publish_conversation_event(PG_FUNCTION_ARGS)
{
	AegisEvent	ev;
	char	   *event;
	char	   *node;
	Jsonb	   *data;

	require_arg(fcinfo, 0, "conversation_id", "Pass the conversation the run belongs to.");
	require_arg(fcinfo, 1, "event", "Pass node_end, done or error.");
	require_arg(fcinfo, 3, "data", "Pass the event's data as a jsonb object.");
	validate_stream_id("conversation_id", PG_GETARG_TEXT_PP(0));
	event = text_to_cstring(PG_GETARG_TEXT_PP(1));
	node = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	data = PG_GETARG_JSONB_P(3);
	validate_size("data", VARSIZE(data));
	validate_conversation_event(event, node, data);

	ev.stream_kind = "conversation";
	ev.stream_id = PG_GETARG_TEXT_PP(0);
	ev.event_type = cstring_to_text(event);
	ev.payload = conversation_payload(event, node, data);
	/* what is stored: the data, the node and the envelope */
	validate_size("conversation event", VARSIZE(ev.payload));
	ev.topic = NULL;
	ev.key = NULL;
	ev.headers = NULL;
	PG_RETURN_INT64(store_publish(&ev));
}

/*
 * aegis.publish_run_request(conversation_id, message, agent_id, agent_type):
 * an event in stream ('run', agent_type or 'default') for agent workers.
 * aegis.request_run() calls it once per open request.
 */
Datum
aegis_publish_run_request(PG_FUNCTION_ARGS)
{
	AegisEvent	ev;
	JsonbParseState *state = NULL;
	text	   *agent_type = arg_text_or_null(fcinfo, 3);

	require_arg(fcinfo, 0, "conversation_id", "Pass the conversation to run.");
	require_arg(fcinfo, 1, "message", "Pass the user's message.");
	validate_stream_id("conversation_id", PG_GETARG_TEXT_PP(0));
	if (agent_type != NULL)
		validate_stream_id("agent_type", agent_type);
	if (!PG_ARGISNULL(2))
		validate_stream_id("agent_id", PG_GETARG_TEXT_PP(2));
	validate_size("message", VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(1)));

	payload_begin(&state);
	payload_text(&state, "conversation_id", PG_GETARG_TEXT_PP(0));
	payload_text(&state, "message", PG_GETARG_TEXT_PP(1));
	payload_text(&state, "agent_id", arg_text_or_null(fcinfo, 2));
	payload_text(&state, "agent_type", agent_type);

	ev.stream_kind = "run";
	ev.stream_id = agent_type != NULL ? agent_type : cstring_to_text("default");
	ev.event_type = cstring_to_text("run_request");
	ev.payload = payload_end(&state);
	ev.topic = NULL;
	ev.key = NULL;
	ev.headers = NULL;
	PG_RETURN_INT64(store_publish(&ev));
}

/* aegis.validate_workspace_event(event_type, payload): true, or an error */
Datum
aegis_validate_workspace_event(PG_FUNCTION_ARGS)
{
	require_arg(fcinfo, 0, "event_type", "Pass one of the eight workspace event types.");
	require_arg(fcinfo, 1, "payload", "Pass the event's fields as a jsonb object.");
	validate_workspace_event(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_JSONB_P(1));
	PG_RETURN_BOOL(true);
}

/* aegis.validate_conversation_event(event, node, data): true, or an error */
Datum
aegis_validate_conversation_event(PG_FUNCTION_ARGS)
{
	require_arg(fcinfo, 0, "event", "Pass node_end, done or error.");
	require_arg(fcinfo, 2, "data", "Pass the event's data as a jsonb object.");
	validate_conversation_event(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
								PG_GETARG_JSONB_P(2));
	PG_RETURN_BOOL(true);
}
