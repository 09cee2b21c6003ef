/*-------------------------------------------------------------------------
 * store.c
 *	  Writes one event row into aegis.events: takes its position, forms the
 *	  tuple and inserts it with its index entries, keeping the opened table
 *	  and indexes for the rest of the transaction.
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
#include "utils/resowner.h"
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

/*
 * The stream kind as a text datum: the few kinds are made once per backend
 * rather than once per event.
 */
static Datum
store_kind_datum(const char *kind)
{
	static struct
	{
		const char *kind;
		Datum		datum;
	}			kinds[8];
	static int	nkinds = 0;
	MemoryContext old;

	for (int i = 0; i < nkinds; i++)
		if (strcmp(kinds[i].kind, kind) == 0)
			return kinds[i].datum;
	if (nkinds == lengthof(kinds))
		return CStringGetTextDatum(kind);
	old = MemoryContextSwitchTo(TopMemoryContext);
	kinds[nkinds].kind = pstrdup(kind);
	kinds[nkinds].datum = CStringGetTextDatum(kind);
	MemoryContextSwitchTo(old);
	return kinds[nkinds++].datum;
}

static void
store_form_values(const AegisEvent *ev, int64 id, Datum *values, bool *nulls)
{
	memset(nulls, 0, sizeof(bool) * EVENTS_NATTS);
	values[0] = Int64GetDatum(id);
	values[1] = store_kind_datum(ev->stream_kind);
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

/*
 * What inserting needs, opened once per transaction and kept: the table, its
 * indexes (with their compiled predicates) and a slot.  The top-level
 * transaction's resource owner holds the references, so subtransactions
 * neither release nor leak them.  Closed before commit; forgotten at abort,
 * where that owner released the references and the memory went with
 * TopTransactionContext.
 */
typedef struct StoreCache
{
	Relation	rel;
	ResultRelInfo *rri;
	EState	   *estate;
	TupleTableSlot *slot;
} StoreCache;

static StoreCache *cache = NULL;
static bool callbacks_registered = false;

static void
store_cache_close(bool release)
{
	if (cache == NULL)
		return;
	if (release)
	{
		ResourceOwner save = CurrentResourceOwner;

		CurrentResourceOwner = TopTransactionResourceOwner;
		ExecCloseIndices(cache->rri);
		ExecDropSingleTupleTableSlot(cache->slot);
		table_close(cache->rel, NoLock);
		FreeExecutorState(cache->estate);
		CurrentResourceOwner = save;
	}
	cache = NULL;
}

static void
store_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PARALLEL_PRE_COMMIT ||
		event == XACT_EVENT_PRE_PREPARE)
		store_cache_close(true);
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		store_cache_close(false);
}

static StoreCache *
store_cache_open(void)
{
	MemoryContext old;
	ResourceOwner save_owner;
	StoreCache *c;
	Relation	rel;

	if (cache != NULL)
		return cache;
	if (!callbacks_registered)
	{
		RegisterXactCallback(store_xact_callback, NULL);
		callbacks_registered = true;
	}
	/* The references outlive the statement: the transaction owns them. */
	save_owner = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	rel = table_open(store_events_relid(), RowExclusiveLock);
	if (RelationGetDescr(rel)->natts != EVENTS_NATTS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table aegis.events has %d columns, expected %d",
						RelationGetDescr(rel)->natts, EVENTS_NATTS),
				 errhint("Do not alter aegis.events; reinstall the extension.")));

	old = MemoryContextSwitchTo(TopTransactionContext);
	c = palloc0(sizeof(StoreCache));
	c->rel = rel;
	c->estate = CreateExecutorState();
	MemoryContextSwitchTo(c->estate->es_query_cxt);
	c->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(c->rri, rel, 1, NULL, 0);
	ExecOpenIndices(c->rri, false);
	c->slot = table_slot_create(rel, NULL);
	MemoryContextSwitchTo(old);
	CurrentResourceOwner = save_owner;
	cache = c;
	return c;
}

static void
store_insert(StoreCache *c, Datum *values, bool *nulls)
{
	TupleTableSlot *slot = c->slot;

	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * EVENTS_NATTS);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * EVENTS_NATTS);
	ExecStoreVirtualTuple(slot);

	table_tuple_insert(c->rel, slot, GetCurrentCommandId(true), 0, NULL);
	list_free(ExecInsertIndexTuples(c->rri, slot, c->estate, false, false, NULL, NIL));
	ResetPerTupleExprContext(c->estate);
	ExecClearTuple(slot);
}

/* Store one validated event; returns its position. */
int64
store_publish(const AegisEvent *event)
{
	StoreCache *c = store_cache_open();
	Datum		values[EVENTS_NATTS];
	bool		nulls[EVENTS_NATTS];
	int64		id;

	id = order_assign_position();
	store_form_values(event, id, values, nulls);
	store_insert(c, values, nulls);
	return id;
}
