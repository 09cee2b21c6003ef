/*-------------------------------------------------------------------------
 * trigger.c
 *	  Trigger functions: aegis.emit_row_event(topic [, options]), which turns
 *	  an application table's row changes into events keyed by the primary key
 *	  (options: which columns to publish, what a row too large for
 *	  aegis.max_payload_bytes does), and aegis.refuse_change(), the
 *	  append-only guard of aegis.events (which lets aegis.enforce_retention's
 *	  deletes through, see retention.c).
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
#include "utils/numeric.h"

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

/*
 * What a trigger's arguments after the topic ask for:
 *   columns=a,b,c     publish only these columns (comma-separated names)
 *   exclude=a,b       publish every column but these
 *   oversize=reference|error
 *                     a row event larger than aegis.max_payload_bytes
 *                     publishes a reference (table, operation, key, size;
 *                     the default) or fails the statement (22001)
 */
typedef struct RowEventOptions
{
	bool	   *publish;		/* per attribute (0-based), NULL: every column */
	bool		oversize_error;
} RowEventOptions;

static void
row_option_error(const char *option, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("aegis.emit_row_event(): invalid option \"%s\"", option),
			 errdetail("%s", detail),
			 errhint("Options after the topic: 'columns=a,b', 'exclude=a,b' (one of the two), 'oversize=reference' or 'oversize=error'.")));
}

/* Marks the columns named in list (comma-separated) in marks; errors name the option. */
static void
row_option_columns(const char *option, const char *list, TupleDesc desc, bool *marks)
{
	char	   *copy = pstrdup(list);
	char	   *save = NULL;
	int			n = 0;

	for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save))
	{
		int			att;
		char	   *end;

		while (*name == ' ')
			name++;
		end = name + strlen(name);
		while (end > name && end[-1] == ' ')
			*--end = '\0';
		if (*name == '\0')
			continue;
		for (att = 0; att < desc->natts; att++)
		{
			Form_pg_attribute a = TupleDescAttr(desc, att);

			if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
				break;
		}
		if (att == desc->natts)
			row_option_error(option, psprintf("column \"%s\" does not exist in the table", name));
		marks[att] = true;
		n++;
	}
	if (n == 0)
		row_option_error(option, "the column list is empty");
}

static RowEventOptions
row_event_options(TriggerData *td, TupleDesc desc)
{
	RowEventOptions opts = {NULL, false};
	bool		seen_columns = false;
	bool		seen_oversize = false;

	for (int i = 1; i < td->tg_trigger->tgnargs; i++)
	{
		const char *arg = td->tg_trigger->tgargs[i];

		if (strncmp(arg, "columns=", 8) == 0 || strncmp(arg, "exclude=", 8) == 0)
		{
			bool		exclude = arg[0] == 'e';
			bool	   *marks = palloc0(sizeof(bool) * Max(desc->natts, 1));

			if (seen_columns)
				row_option_error(arg, "columns= and exclude= may be given once, and not both");
			seen_columns = true;
			row_option_columns(arg, arg + 8, desc, marks);
			if (exclude)
				for (int att = 0; att < desc->natts; att++)
					marks[att] = !marks[att];
			opts.publish = marks;
		}
		else if (strncmp(arg, "oversize=", 9) == 0)
		{
			if (seen_oversize)
				row_option_error(arg, "oversize= may be given once");
			seen_oversize = true;
			if (strcmp(arg + 9, "error") == 0)
				opts.oversize_error = true;
			else if (strcmp(arg + 9, "reference") != 0)
				row_option_error(arg, "oversize= is \"reference\" or \"error\"");
		}
		else
			row_option_error(arg, "unknown option");
	}
	return opts;
}

/* The row as jsonb with only the published columns (all when publish is NULL). */
static Jsonb *
row_published(Jsonb *row, TupleDesc desc, const bool *publish)
{
	JsonbParseState *state = NULL;

	if (row == NULL || publish == NULL)
		return row;
	payload_begin(&state);
	for (int att = 0; att < desc->natts; att++)
	{
		const char *name = NameStr(TupleDescAttr(desc, att)->attname);
		JsonbValue	k;
		JsonbValue	v;

		if (!publish[att] || TupleDescAttr(desc, att)->attisdropped)
			continue;
		if (getKeyJsonValueFromContainer(&row->root, name, strlen(name), &v) == NULL)
			continue;
		k.type = jbvString;
		k.val.string.val = (char *) name;
		k.val.string.len = strlen(name);
		pushJsonbValue(&state, WJB_KEY, &k);
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	return payload_end(&state);
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

/*
 * The event published instead of a row too large for aegis.max_payload_bytes:
 * {"event_type": type, "data": {"reference": true, "table": "schema.table",
 *  "key": key, "bytes": size}} -- consumers read the row by its key.
 */
static Jsonb *
row_reference_payload(const char *type, Relation rel, text *key, Size bytes)
{
	JsonbParseState *state = NULL;
	JsonbParseState *data_state = NULL;
	JsonbValue	k;
	JsonbValue	v;

	payload_begin(&data_state);
	payload_string(&data_state, "table",
				   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											  RelationGetRelationName(rel)), -1);
	payload_text(&data_state, "key", key);
	k.type = jbvString;
	k.val.string.val = "bytes";
	k.val.string.len = 5;
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric((int64) bytes);
	pushJsonbValue(&data_state, WJB_KEY, &k);
	pushJsonbValue(&data_state, WJB_VALUE, &v);
	k.val.string.val = "reference";
	k.val.string.len = 9;
	v.type = jbvBool;
	v.val.boolean = true;
	pushJsonbValue(&data_state, WJB_KEY, &k);
	pushJsonbValue(&data_state, WJB_VALUE, &v);

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
	if (td->tg_trigger->tgnargs < 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("aegis.emit_row_event() takes the topic as its first argument, got %d arguments",
						td->tg_trigger->tgnargs),
				 errhint("EXECUTE FUNCTION aegis.emit_row_event('entity-extraction-worker').")));
}

/*
 * aegis.emit_row_event(topic [, options]): publishes
 * {"event_type": "<table>.<insert|update|delete>", "data": {"old": …, "new": …}}
 * to topic, keyed by the row's primary key (computed from the whole row, so
 * the key is the primary key whatever columns= says).  Options: see
 * RowEventOptions.
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
	RowEventOptions opts;

	check_trigger_call(fcinfo);
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	topic = cstring_to_text(td->tg_trigger->tgargs[0]);
	validate_topic_name(topic);
	opts = row_event_options(td, desc);

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
	ev.stream_kind = "topic";
	ev.stream_id = topic;
	ev.topic = topic;
	ev.key = row_key(rel, new_row ? new_row : old_row);
	ev.headers = NULL;
	ev.payload = row_event_payload(text_to_cstring(ev.event_type),
								   row_published(old_row, desc, opts.publish),
								   row_published(new_row, desc, opts.publish));
	if (VARSIZE(ev.payload) > (Size) aegis_max_payload_bytes && !opts.oversize_error)
		ev.payload = row_reference_payload(text_to_cstring(ev.event_type), rel, ev.key,
										   VARSIZE(ev.payload));
	validate_size("row event", VARSIZE(ev.payload));
	store_publish(&ev);
	return PointerGetDatum(NULL);
}
