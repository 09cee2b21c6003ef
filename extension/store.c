/*-------------------------------------------------------------------------
 * store.c
 *	  Writes one event row into aegis.events: takes its position, forms the
 *	  tuple and inserts it with its index entries into the partition that
 *	  holds the position, keeping the opened partition and its indexes for
 *	  the rest of the transaction.
 *
 *	  The row is written with the table AM and ExecInsertIndexTuples rather
 *	  than an SPI INSERT: the executor start-up of an SPI statement per event
 *	  cost a third of publish throughput (bench/publish), and the row's shape
 *	  is fixed by the extension.  Consequences, documented in the README:
 *	  the publish functions check no table privilege (EXECUTE on them is the
 *	  privilege) and user triggers added to aegis.events do not fire.
 *
 *	  Partitions (aegis.events is partitioned by range of id since 0.3.0):
 *	  the row goes straight into its partition, found by a binary search in
 *	  a backend-local array of the partitions' bounds (lo, hi, relid) made
 *	  from the parent's partition descriptor and forgotten when the parent's
 *	  relcache entry is invalidated (a partition attached or dropped).  Only
 *	  the partition is locked (RowExclusiveLock), as an INSERT into a
 *	  partition does; the parent is not, so dropping an old partition does
 *	  not wait for publishers.  A position beyond the last partition accepts
 *	  invalidations and looks again, and if it still has no partition the
 *	  publishing backend calls aegis.partitions_extend itself.  This is
 *	  cheaper than ExecFindPartition's tuple routing, which cost a quarter
 *	  of publish throughput.  A 0.2.0 store (one plain table) is written as
 *	  before.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
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
 * The partitions' bounds, backend-local: sorted by lo, [lo, hi) each (lo
 * INT64_MIN for MINVALUE).  Valid until the parent's relcache entry is
 * invalidated; parent is InvalidOid when not built (or aegis.events is not
 * partitioned: then plain is true).
 */
typedef struct StoreBound
{
	int64		lo;
	int64		hi;
	Oid			relid;
} StoreBound;

static struct
{
	bool		valid;
	bool		stale;			/* invalidated since the build began */
	bool		plain;			/* aegis.events is one table, not partitioned */
	Oid			parent;
	int			n;
	StoreBound *bounds;			/* in TopMemoryContext */
}			parts = {false, false, false, InvalidOid, 0, NULL};

static void
store_relcache_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == parts.parent)
	{
		parts.valid = false;
		parts.stale = true;
	}
}

/*
 * Reads the parent's partition descriptor into parts.  The name is looked
 * up again once the lock is granted: a conversion of the 0.2.0 table that
 * committed while this backend waited renamed the table it had found to
 * events_p0.  An invalidation while reading starts over.
 */
static void
store_bounds_build(void)
{
	for (int attempt = 0;; attempt++)
	{
		Oid			parent = store_events_relid();
		Relation	rel;
		PartitionDesc pd;
		PartitionBoundInfo bi;
		int			n = 0;

		if (attempt == 10)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("the partitions of aegis.events kept changing while they were read"),
					 errhint("Retry the transaction.")));
		/* an invalidation from here on marks it stale; an error leaves it invalid */
		parts.valid = false;
		parts.stale = false;
		parts.parent = parent;
		rel = table_open(parent, AccessShareLock);
		if (parts.stale || store_events_relid() != parent)
		{
			table_close(rel, AccessShareLock);
			continue;
		}
		if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		{
			table_close(rel, AccessShareLock);
			parts.plain = true;
			parts.n = 0;
			if (!parts.stale)
			{
				parts.valid = true;
				return;
			}
			continue;
		}
		parts.plain = false;
		parts.n = 0;
		pd = RelationGetPartitionDesc(rel, true);
		bi = pd->boundinfo;
		if (parts.bounds != NULL)
			pfree(parts.bounds);
		parts.bounds = NULL;
		parts.bounds = MemoryContextAlloc(TopMemoryContext,
										  sizeof(StoreBound) * Max(pd->nparts, 1));

		/*
		 * Range bounds: indexes[i] is the partition whose upper bound is
		 * datums[i] (-1: a gap), so it holds [datums[i - 1], datums[i]).
		 */
		if (bi != NULL && bi->strategy == PARTITION_STRATEGY_RANGE)
		{
			for (int i = 1; i < bi->ndatums && n < pd->nparts; i++)
			{
				int			idx = bi->indexes[i];
				StoreBound *b;

				if (idx < 0 || !pd->is_leaf[idx])
					continue;
				b = &parts.bounds[n++];
				b->lo = bi->kind[i - 1][0] == PARTITION_RANGE_DATUM_MINVALUE ?
					PG_INT64_MIN : DatumGetInt64(bi->datums[i - 1][0]);
				b->hi = bi->kind[i][0] == PARTITION_RANGE_DATUM_MAXVALUE ?
					PG_INT64_MAX : DatumGetInt64(bi->datums[i][0]);
				b->relid = pd->oids[idx];
			}
		}
		parts.n = n;
		table_close(rel, AccessShareLock);
		if (!parts.stale)
		{
			parts.valid = true;
			return;
		}
	}
}

/* The partition of the array that holds id, or NULL. */
static StoreBound *
store_bounds_find(int64 id)
{
	int			lo = 0,
				hi = parts.n - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		StoreBound *b = &parts.bounds[mid];

		if (id < b->lo)
			hi = mid - 1;
		else if (id >= b->hi)
			lo = mid + 1;
		else
			return b;
	}
	return NULL;
}

/*
 * Makes partitions up to id (and aegis.partitions_ahead beyond) from this
 * backend.  First the lock aegis.partitions_extend serializes its callers
 * with: when it is granted, another backend (the maintenance worker, or a
 * publisher that crossed the same bound) may have made the partition
 * meanwhile, which the catalogs show even to a REPEATABLE READ transaction
 * whose snapshot is older.  Otherwise aegis.partitions_extend is called
 * through fmgr, as its owner (SECURITY DEFINER) and without an EXECUTE
 * check, since publishing is the privilege.  Refused with a clear error when
 * this backend has aegis.events open (a statement that reads it publishes):
 * ATTACH PARTITION cannot alter a table that a running query of the same
 * session uses.
 */
static void
store_extend(int64 id)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Oid			fn;
	Relation	rel;
	bool		in_use;
	int32		key;

	key = DatumGetInt32(DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID,
												CStringGetTextDatum("aegis.partitions_extend")));
	(void) DirectFunctionCall1(pg_advisory_xact_lock_int8, Int64GetDatum((int64) key));
	AcceptInvalidationMessages();
	if (!parts.valid)
		store_bounds_build();
	if (parts.plain || store_bounds_find(id) != NULL)
		return;

	LockRelationOid(parts.parent, AccessShareLock);
	rel = RelationIdGetRelation(parts.parent);
	in_use = RelationIsValid(rel) && rel->rd_refcnt > 1;
	if (RelationIsValid(rel))
		RelationClose(rel);
	if (in_use)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot attach a partition to aegis.events while this statement reads it"),
				 errdetail("Position " INT64_FORMAT " is beyond the last partition, and a table that a "
						   "running query of the same session has open cannot be altered.", id),
				 errhint("Publish in a statement that does not read aegis.events, or make partitions "
						 "ahead first with aegis.partitions_extend(position, ahead).")));

	fn = LookupFuncName(list_make2(makeString("aegis"), makeString("partitions_extend")),
						2, argtypes, true);
	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("position " INT64_FORMAT " is beyond the last partition of aegis.events", id),
				 errdetail("Function aegis.partitions_extend(bigint, integer) does not exist."),
				 errhint("Update the extension: ALTER EXTENSION aegis_events UPDATE.")));
	(void) OidFunctionCall2(fn, Int64GetDatum(id), Int32GetDatum(aegis_partitions_ahead));
	/* our own ATTACH has been noted; other sessions' commits too */
	AcceptInvalidationMessages();
}

/*
 * The partition for id from the array: rebuilt when invalidated, then
 * after accepting invalidations (a partition attached since), then after
 * making partitions.  Sets *relid and its bounds [*lo, *hi); a store that
 * is not partitioned is its own partition for every position.
 */
static void
store_route(int64 id, Oid *relid, int64 *lo, int64 *hi)
{
	StoreBound *b = NULL;

	for (int attempt = 0; attempt < 3 && b == NULL; attempt++)
	{
		if (attempt == 1)
			AcceptInvalidationMessages();
		else if (attempt == 2)
			store_extend(id);
		if (!parts.valid)
			store_bounds_build();
		if (parts.plain)
		{
			*relid = parts.parent;
			*lo = PG_INT64_MIN;
			*hi = PG_INT64_MAX;
			return;
		}
		b = store_bounds_find(id);
		/* below the first partition: making more does not help */
		if (b == NULL && attempt == 1 && parts.n > 0 && id < parts.bounds[0].lo)
			break;
	}
	if (b == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no partition of aegis.events holds position " INT64_FORMAT, id),
				 errdetail("Partitions cover %d ranges from " INT64_FORMAT " to " INT64_FORMAT ".",
						   parts.n, parts.n > 0 ? parts.bounds[0].lo : 0,
						   parts.n > 0 ? parts.bounds[parts.n - 1].hi : 0),
				 errhint("Do not detach or drop partitions of aegis.events above aegis.safe_position().")));
	*relid = b->relid;
	*lo = b->lo;
	*hi = b->hi;
}

/*
 * What inserting needs, opened once per transaction and kept: per
 * partition written, the partition, its indexes (with their compiled
 * predicates) and a slot.  The top-level transaction's resource owner
 * holds the references, so subtransactions neither release nor leak them.
 * Closed before commit; forgotten at abort, where that owner released the
 * references and the memory went with TopTransactionContext.
 */
typedef struct StorePart
{
	int64		lo;
	int64		hi;
	Relation	rel;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	struct StorePart *next;
} StorePart;

typedef struct StoreCache
{
	EState	   *estate;
	StorePart  *cur;			/* the partition written last */
	StorePart  *all;
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
		for (StorePart *p = cache->all; p != NULL; p = p->next)
		{
			ExecCloseIndices(p->rri);
			ExecDropSingleTupleTableSlot(p->slot);
			table_close(p->rel, NoLock);
		}
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
	StoreCache *c;

	if (cache != NULL)
		return cache;
	if (!callbacks_registered)
	{
		RegisterXactCallback(store_xact_callback, NULL);
		CacheRegisterRelcacheCallback(store_relcache_callback, (Datum) 0);
		callbacks_registered = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	c = palloc0(sizeof(StoreCache));
	c->estate = CreateExecutorState();
	MemoryContextSwitchTo(old);
	cache = c;
	return c;
}

/* Opens the partition relid ([lo, hi)) for the rest of the transaction. */
static StorePart *
store_part_open(StoreCache *c, Oid relid, int64 lo, int64 hi)
{
	MemoryContext old;
	ResourceOwner save_owner;
	StorePart  *p;
	Relation	rel;

	for (p = c->all; p != NULL; p = p->next)
		if (RelationGetRelid(p->rel) == relid)
			return p;

	/* The references outlive the statement: the transaction owns them. */
	save_owner = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	rel = table_open(relid, RowExclusiveLock);
	if (RelationGetDescr(rel)->natts != EVENTS_NATTS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s has %d columns, expected %d",
						RelationGetRelationName(rel), RelationGetDescr(rel)->natts, EVENTS_NATTS),
				 errhint("Do not alter aegis.events; reinstall the extension.")));

	old = MemoryContextSwitchTo(c->estate->es_query_cxt);
	p = palloc0(sizeof(StorePart));
	p->lo = lo;
	p->hi = hi;
	p->rel = rel;
	p->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(p->rri, rel, 1, NULL, 0);
	ExecOpenIndices(p->rri, false);
	p->slot = table_slot_create(rel, NULL);
	MemoryContextSwitchTo(old);
	CurrentResourceOwner = save_owner;
	p->next = c->all;
	c->all = p;
	return p;
}

/*
 * The opened partition for id: the last one written, or found and opened.
 * When the bounds were invalidated while the partition's lock was awaited
 * (a conversion of the 0.2.0 table committed meanwhile, or a partition was
 * attached), the route is looked up again: a partition opened under stale
 * bounds is kept locked but used for no position.  Once the lock is held,
 * the partition's bounds cannot change (that takes ACCESS EXCLUSIVE on it).
 */
static StorePart *
store_part_for(StoreCache *c, int64 id)
{
	Oid			relid;
	int64		lo,
				hi;

	if (c->cur != NULL && id >= c->cur->lo && id < c->cur->hi)
		return c->cur;
	for (StorePart *p = c->all; p != NULL; p = p->next)
		if (id >= p->lo && id < p->hi)
			return c->cur = p;
	for (int attempt = 0;; attempt++)
	{
		StorePart  *p;

		store_route(id, &relid, &lo, &hi);
		p = store_part_open(c, relid, lo, hi);
		if (parts.valid)
			return c->cur = p;
		store_route(id, &relid, &lo, &hi);
		if (relid == RelationGetRelid(p->rel))
		{
			p->lo = lo;
			p->hi = hi;
			return c->cur = p;
		}
		p->lo = p->hi = 0;
		if (attempt == 3)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("the partitions of aegis.events kept changing while position " INT64_FORMAT
							" was stored", id),
					 errhint("Retry the transaction.")));
	}
}

static void
store_insert(StoreCache *c, StorePart *p, Datum *values, bool *nulls)
{
	TupleTableSlot *slot = p->slot;

	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * EVENTS_NATTS);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * EVENTS_NATTS);
	ExecStoreVirtualTuple(slot);

	table_tuple_insert(p->rel, slot, GetCurrentCommandId(true), 0, NULL);
	list_free(ExecInsertIndexTuples(p->rri, slot, c->estate, false, false, NULL, NIL));
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
	store_insert(c, store_part_for(c, id), values, nulls);
	return id;
}
