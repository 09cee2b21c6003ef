/*-------------------------------------------------------------------------
 * store.c
 *	  Writes one event row into aegis.events: takes its position, forms the
 *	  tuple and inserts it with its index entries.
 *
 *	  The row is written with the table AM and ExecInsertIndexTuples rather
 *	  than an SPI INSERT: the executor start-up of an SPI statement per event
 *	  cost a third of publish throughput (bench/publish), and the row's shape
 *	  is fixed by the extension.  Consequences, documented in the README:
 *	  the publish functions check no table privilege (EXECUTE on them is the
 *	  privilege) and user triggers added to aegis.events do not fire.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "aegis.h"

#define EVENTS_NATTS 9

static Oid
store_events_relid(void)
{
	Oid			nsp = get_namespace_oid("aegis", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("events", nsp) : InvalidOid;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table aegis.events does not exist"),
				 errhint("Run CREATE EXTENSION aegis_events in this database.")));
	return relid;
}

static void
store_form_values(const AegisEvent *ev, int64 id, Datum *values, bool *nulls)
{
	memset(nulls, 0, sizeof(bool) * EVENTS_NATTS);
	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(ev->stream_kind);
	values[2] = PointerGetDatum(ev->stream_id);
	values[3] = PointerGetDatum(ev->event_type);
	values[4] = JsonbPGetDatum(ev->payload);
	values[5] = PointerGetDatum(ev->topic);
	nulls[5] = (ev->topic == NULL);
	values[6] = PointerGetDatum(ev->key);
	nulls[6] = (ev->key == NULL);
	values[7] = PointerGetDatum(ev->headers);
	nulls[7] = (ev->headers == NULL);
	values[8] = TimestampTzGetDatum(GetCurrentTimestamp());
}

static void
store_insert(Relation rel, Datum *values, bool *nulls)
{
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	EState	   *estate = CreateExecutorState();
	TupleTableSlot *slot = table_slot_create(rel, NULL);

	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);

	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * EVENTS_NATTS);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * EVENTS_NATTS);
	ExecStoreVirtualTuple(slot);

	table_tuple_insert(rel, slot, GetCurrentCommandId(true), 0, NULL);
	list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL));

	ExecCloseIndices(rri);
	ExecDropSingleTupleTableSlot(slot);
	FreeExecutorState(estate);
}

/* Store one validated event; returns its position. */
int64
store_publish(const AegisEvent *event)
{
	Relation	rel;
	Datum		values[EVENTS_NATTS];
	bool		nulls[EVENTS_NATTS];
	int64		id;

	rel = table_open(store_events_relid(), RowExclusiveLock);
	if (RelationGetDescr(rel)->natts != EVENTS_NATTS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table aegis.events has %d columns, expected %d",
						RelationGetDescr(rel)->natts, EVENTS_NATTS),
				 errhint("Do not alter aegis.events; reinstall the extension.")));

	id = order_assign_position();
	store_form_values(event, id, values, nulls);
	store_insert(rel, values, nulls);
	table_close(rel, NoLock);
	return id;
}
