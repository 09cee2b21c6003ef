/*-------------------------------------------------------------------------
 * trigger.c
 *	  Trigger functions: aegis.emit_row_event(topic), which turns an
 *	  application table's row changes into events keyed by the primary key,
 *	  and aegis.refuse_change(), the append-only guard of aegis.events (which
 *	  lets aegis.enforce_retention's deletes through, see retention.c).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "aegis.h"

PG_FUNCTION_INFO_V1(aegis_emit_row_event);
PG_FUNCTION_INFO_V1(aegis_refuse_change);

/* aegis.refuse_change(): BEFORE UPDATE/DELETE/TRUNCATE on aegis.events */
Datum
aegis_refuse_change(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *op = "change";

	/* aegis.enforce_retention removes expired rows (superuser-only flag) */
	if (CALLED_AS_TRIGGER(fcinfo) && aegis_retention_deleting &&
		TRIGGER_FIRED_BY_DELETE(td->tg_event) && TRIGGER_FIRED_FOR_ROW(td->tg_event))
		return PointerGetDatum(td->tg_trigtuple);
	if (CALLED_AS_TRIGGER(fcinfo))
		op = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? "UPDATE"
			: TRIGGER_FIRED_BY_DELETE(td->tg_event) ? "DELETE"
			: TRIGGER_FIRED_BY_TRUNCATE(td->tg_event) ? "TRUNCATE" : "change";
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("aegis.events is append-only: %s is not allowed", op),
			 errdetail("Readers and the Kafka drain rely on events never changing once committed."),
			 errhint("Publish a new event that corrects the old one.")));
	PG_RETURN_NULL();
}

static Jsonb *
row_to_jsonb(HeapTuple tuple, TupleDesc desc)
{
	Datum		rec = heap_copy_tuple_as_datum(tuple, desc);
	Datum		json = DirectFunctionCall1(row_to_json, rec);

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(TextDatumGetCString(json))));
}

/* The primary key of the row as text: one column's value, or a JSON array. */
static text *
row_key(Relation rel, Jsonb *row)
{
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	Relation	index;
	StringInfoData buf;
	int			nkeys;

	if (!OidIsValid(pk) || row == NULL)
		return NULL;
	index = index_open(pk, AccessShareLock);
	nkeys = index->rd_index->indnkeyatts;
	initStringInfo(&buf);
	for (int i = 0; i < nkeys; i++)
	{
		AttrNumber	att = index->rd_index->indkey.values[i];
		char	   *name = NameStr(TupleDescAttr(RelationGetDescr(rel), att - 1)->attname);
		JsonbValue	v;

		if (getKeyJsonValueFromContainer(&row->root, name, strlen(name), &v) == NULL)
			continue;
		if (nkeys == 1 && v.type == jbvString)
			appendBinaryStringInfo(&buf, v.val.string.val, v.val.string.len);
		else
		{
			if (i > 0)
				appendStringInfoString(&buf, ",");
			appendStringInfoString(&buf, JsonbToCString(NULL, &JsonbValueToJsonb(&v)->root, 0));
		}
	}
	index_close(index, AccessShareLock);
	if (nkeys > 1)
		return cstring_to_text(psprintf("[%s]", buf.data));
	return cstring_to_text(buf.data);
}

/* {"event_type": type, "data": {"old": old, "new": new}} */
static Jsonb *
row_event_payload(const char *type, Jsonb *old_row, Jsonb *new_row)
{
	JsonbParseState *state = NULL;
	JsonbParseState *data_state = NULL;

	payload_begin(&data_state);
	payload_jsonb(&data_state, "old", old_row);
	payload_jsonb(&data_state, "new", new_row);

	payload_begin(&state);
	payload_string(&state, "event_type", type, -1);
	payload_jsonb(&state, "data", payload_end(&data_state));
	return payload_end(&state);
}

static void
check_trigger_call(FunctionCallInfo fcinfo)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("aegis.emit_row_event() must be called as a trigger"),
				 errhint("CREATE TRIGGER … AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('topic').")));
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("aegis.emit_row_event() must be an AFTER … FOR EACH ROW trigger"),
				 errhint("Attach it AFTER INSERT OR UPDATE OR DELETE … FOR EACH ROW.")));
	if (td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("aegis.emit_row_event() takes one argument, the topic, got %d",
						td->tg_trigger->tgnargs),
				 errhint("EXECUTE FUNCTION aegis.emit_row_event('entity-extraction-worker').")));
}

/*
 * aegis.emit_row_event(topic): publishes
 * {"event_type": "<table>.<insert|update|delete>", "data": {"old": …, "new": …}}
 * to topic, keyed by the row's primary key.
 */
Datum
aegis_emit_row_event(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	Jsonb	   *old_row = NULL;
	Jsonb	   *new_row = NULL;
	const char *op;
	AegisEvent	ev;
	text	   *topic;

	check_trigger_call(fcinfo);
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	topic = cstring_to_text(td->tg_trigger->tgargs[0]);
	validate_topic_name(topic);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		op = "insert";
		new_row = row_to_jsonb(td->tg_trigtuple, desc);
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		op = "update";
		old_row = row_to_jsonb(td->tg_trigtuple, desc);
		new_row = row_to_jsonb(td->tg_newtuple, desc);
	}
	else
	{
		op = "delete";
		old_row = row_to_jsonb(td->tg_trigtuple, desc);
	}

	ev.event_type = cstring_to_text(psprintf("%s.%s", RelationGetRelationName(rel), op));
	ev.payload = row_event_payload(text_to_cstring(ev.event_type), old_row, new_row);
	ev.stream_kind = "topic";
	ev.stream_id = topic;
	ev.topic = topic;
	ev.key = row_key(rel, new_row ? new_row : old_row);
	ev.headers = NULL;
	validate_size("row event", VARSIZE(ev.payload));
	store_publish(&ev);
	return PointerGetDatum(NULL);
}
