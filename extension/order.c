/*-------------------------------------------------------------------------
 * order.c
 *	  Positions and the safe position ("horizon"): the one order readers share.
 *
 *	  A cluster-wide counter in shared memory hands out positions.  Each
 *	  backend slot (indexed by pgprocno) holds the lowest position its open
 *	  transaction took.  The safe position is one below the smallest such
 *	  slot, or the counter when no publishing transaction is open: every
 *	  position at or below it is final (committed and visible, or aborted and
 *	  never visible).  Slots are cleared by the commit/abort callbacks, which
 *	  run after the transaction left the proc array, so a snapshot taken after
 *	  computing the safe position sees every commit it covers.  See
 *	  docs/ORDERING.md for the argument.  Readers that want to block until
 *	  the safe position moves (aegis.wait_all) sleep on a condition variable
 *	  that the commit/abort callbacks broadcast.  Owns the setting
 *	  aegis.max_databases and the check that the library was preloaded.
 *	  Calls no other module of the extension: the transaction callback in
 *	  aegis_events.c calls order_xact_end() and then wakes the notifier.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "aegis.h"

int			aegis_max_databases = 16;

typedef struct OrderShared
{
	LWLock	   *lock;			/* first position of a transaction, db list */
	pg_atomic_uint64 counter;	/* last position handed out */
	pg_atomic_uint32 waiters;	/* backends in order_wait_for_position */
	ConditionVariable advanced; /* broadcast when a publisher's slot clears */
	int			nslots;
	int			ndatabases;
	Oid		   *databases;		/* databases whose counter floor is set */
	pg_atomic_uint64 *slots;	/* per pgprocno: lowest open position, 0 none */
	pg_atomic_uint64 *since;	/* per pgprocno: when that slot was set */
} OrderShared;

static OrderShared *order = NULL;

/* Backend-local state of the current top-level transaction. */
static int64 xact_first_position = 0;
static bool database_ready = false;
static bool exit_hook_installed = false;

/* True when the library was loaded by shared_preload_libraries. */
static bool order_preloaded = false;

/*
 * Called by _PG_init.  A PGC_POSTMASTER setting can only be defined while
 * preloading; without the preload, shared memory is not there and every
 * entry point refuses (order_require_preload).
 */
void
order_init(void)
{
	order_preloaded = process_shared_preload_libraries_in_progress;
	if (order_preloaded)
		DefineCustomIntVariable("aegis.max_databases",
								"Databases of the cluster that may use aegis_events at once.",
								NULL,
								&aegis_max_databases,
								16, 1, 1024, PGC_POSTMASTER, 0, NULL, NULL, NULL);
}

/* Everything that touches shared memory starts with this check. */
void
order_require_preload(void)
{
	if (!order_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aegis_events must be loaded via shared_preload_libraries"),
				 errdetail("The commit-order horizon and the wake-up worker live in shared memory."),
				 errhint("Add aegis_events to shared_preload_libraries in postgresql.conf and restart the server.")));
}

static int
order_slot_count(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

Size
order_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(OrderShared));

	size = add_size(size, MAXALIGN(mul_size(aegis_max_databases, sizeof(Oid))));
	size = add_size(size, mul_size(order_slot_count(), 2 * sizeof(pg_atomic_uint64)));
	return size;
}

void
order_shmem_init(void)
{
	bool		found;
	char	   *base;

	order = ShmemInitStruct("aegis_events order", order_shmem_size(), &found);
	base = (char *) order;
	order->databases = (Oid *) (base + MAXALIGN(sizeof(OrderShared)));
	order->slots = (pg_atomic_uint64 *)
		(base + MAXALIGN(sizeof(OrderShared)) +
		 MAXALIGN(mul_size(aegis_max_databases, sizeof(Oid))));
	order->since = order->slots + order_slot_count();
	if (found)
		return;
	order->lock = &(GetNamedLWLockTranche("aegis_events"))->lock;
	pg_atomic_init_u64(&order->counter, 0);
	pg_atomic_init_u32(&order->waiters, 0);
	ConditionVariableInit(&order->advanced);
	order->nslots = order_slot_count();
	order->ndatabases = 0;
	for (int i = 0; i < order->nslots; i++)
	{
		pg_atomic_init_u64(&order->slots[i], 0);
		pg_atomic_init_u64(&order->since[i], 0);
	}
}

static pg_atomic_uint64 *
my_slot(void)
{
	Assert(MyProc != NULL && MyProc->pgprocno < order->nslots);
	return &order->slots[MyProc->pgprocno];
}

/* Clearing happens after the transaction left the proc array. */
static void
order_clear_slot(void)
{
	if (order == NULL || MyProc == NULL)
		return;
	pg_memory_barrier();
	pg_atomic_write_u64(my_slot(), 0);
}

/*
 * The safe position may have moved (a commit, or an abort below a commit):
 * wake the waiting readers.  The barrier pairs with the waiter's atomic
 * increment: either the waiter sees the cleared slot or we see the waiter.
 */
static void
order_wake_waiters(void)
{
	if (order == NULL)
		return;
	pg_memory_barrier();
	if (pg_atomic_read_u32(&order->waiters) > 0)
		ConditionVariableBroadcast(&order->advanced);
}

static void
order_on_exit(int code, Datum arg)
{
	order_clear_slot();
}

/* Whether the current top-level transaction took a position. */
bool
order_xact_published(void)
{
	return xact_first_position != 0;
}

/* PREPARE of a publishing transaction: refused (called before it happens). */
void
order_refuse_prepare(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot PREPARE a transaction that published aegis events"),
			 errdetail("Events of a prepared transaction would hold every reader back until COMMIT PREPARED."),
			 errhint("Publish in a transaction that commits directly.")));
}

/*
 * Commit or abort of a publishing transaction, after it left the proc
 * array: its slot clears and waiting readers wake.  Must not fail.
 */
void
order_xact_end(void)
{
	order_clear_slot();
	xact_first_position = 0;
	order_wake_waiters();
}

static bool
database_listed(Oid dboid)
{
	for (int i = 0; i < order->ndatabases; i++)
		if (order->databases[i] == dboid)
			return true;
	return false;
}

/*
 * The largest id in aegis.events, read with the rights of the table's owner
 * (the extension's owner): the first caller after a restart may be a role
 * that can only EXECUTE a publish function.  An error restores the user id
 * with the (sub)transaction's abort.
 */
static int64
order_read_max_id(void)
{
	Oid			nsp = get_namespace_oid("aegis", false);
	Oid			relid = get_relname_relid("events", nsp);
	HeapTuple	tuple;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	int64		max_id;
	bool		isnull;
	int			rc;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table aegis.events does not exist"),
				 errhint("Run CREATE EXTENSION aegis_events in this database.")));
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute("SELECT pg_catalog.max(id) FROM aegis.events", true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the largest event id: %s", SPI_result_code_string(rc));
	max_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return isnull ? 0 : max_id;
}

/*
 * The counter lives in shared memory and starts at 0 after a restart: before
 * this database hands out or reads positions, raise it to the largest id the
 * store holds, so positions never go back below what readers have seen.
 */
static void
order_ensure_database(void)
{
	int64		max_id;

	if (database_ready)
		return;
	LWLockAcquire(order->lock, LW_SHARED);
	database_ready = database_listed(MyDatabaseId);
	LWLockRelease(order->lock);
	if (database_ready)
		return;

	max_id = order_read_max_id();

	LWLockAcquire(order->lock, LW_EXCLUSIVE);
	if (!database_listed(MyDatabaseId))
	{
		if (order->ndatabases >= aegis_max_databases)
		{
			LWLockRelease(order->lock);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("too many databases use aegis_events"),
					 errdetail("aegis.max_databases is %d.", aegis_max_databases),
					 errhint("Raise aegis.max_databases and restart the server.")));
		}
		order->databases[order->ndatabases++] = MyDatabaseId;
	}
	if ((int64) pg_atomic_read_u64(&order->counter) < max_id)
		pg_atomic_write_u64(&order->counter, (uint64) max_id);
	LWLockRelease(order->lock);
	database_ready = true;
}

static void
order_check_can_publish(void)
{
	order_require_preload();
	PreventCommandIfReadOnly("aegis publish");
	PreventCommandIfParallelMode("aegis publish");
	PreventCommandDuringRecovery("aegis publish");
}

/*
 * Hand out the next position.  The first one of a transaction is taken under
 * the exclusive lock together with setting the slot, so a reader computing
 * the safe position sees both or neither.  Later ones are above the slot
 * already and need only the atomic increment.
 */
int64
order_assign_position(void)
{
	int64		position;

	order_check_can_publish();
	order_ensure_database();
	if (xact_first_position != 0)
		return (int64) pg_atomic_add_fetch_u64(&order->counter, 1);

	if (!exit_hook_installed)
	{
		on_shmem_exit(order_on_exit, (Datum) 0);
		exit_hook_installed = true;
	}
	LWLockAcquire(order->lock, LW_EXCLUSIVE);
	position = (int64) pg_atomic_add_fetch_u64(&order->counter, 1);
	pg_atomic_write_u64(my_slot(), (uint64) position);
	pg_atomic_write_u64(&order->since[MyProc->pgprocno],
						(uint64) GetCurrentStatementStartTimestamp());
	LWLockRelease(order->lock);
	xact_first_position = position;
	return position;
}

/*
 * One below the lowest position of any open publishing transaction, or the
 * counter.  Callers take their snapshot after this returns.
 */
int64
order_safe_position(void)
{
	uint64		safe;

	order_require_preload();
	order_ensure_database();
	LWLockAcquire(order->lock, LW_SHARED);
	safe = pg_atomic_read_u64(&order->counter);
	for (int i = 0; i < order->nslots; i++)
	{
		uint64		first = pg_atomic_read_u64(&order->slots[i]);

		if (first != 0 && first - 1 < safe)
			safe = first - 1;
	}
	LWLockRelease(order->lock);
	pg_memory_barrier();
	return (int64) safe;
}

/*
 * Sleeps until the safe position is above seen or the deadline passes, and
 * returns the safe position (at or below seen on timeout).  Interruptible:
 * a cancel or statement_timeout ends the wait with an error.  The caller
 * holds no lock; its statement's snapshot stays, so waits should be short.
 */
int64
order_wait_for_position(int64 seen, TimestampTz deadline)
{
	volatile int64 safe = 0;

	pg_atomic_fetch_add_u32(&order->waiters, 1);
	PG_TRY();
	{
		for (;;)
		{
			long		remaining;

			CHECK_FOR_INTERRUPTS();
			safe = order_safe_position();
			if (safe > seen)
				break;
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (remaining <= 0)
				break;
			/* the first call only prepares the sleep: the loop rechecks */
			ConditionVariableTimedSleep(&order->advanced, remaining, PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
	}
	PG_FINALLY();
	{
		pg_atomic_fetch_sub_u32(&order->waiters, 1);
	}
	PG_END_TRY();
	return safe;
}

/* The last position handed out (the notifier's payload). */
int64
order_last_position(void)
{
	return (int64) pg_atomic_read_u64(&order->counter);
}

/*
 * A reader must take a fresh snapshot after computing the safe position;
 * REPEATABLE READ and SERIALIZABLE reuse the transaction's first snapshot.
 */
void
order_check_reader_isolation(void)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("aegis readers must run at READ COMMITTED isolation"),
				 errdetail("At %s the snapshot predates the safe position, so a late commit could be skipped.",
						   IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errhint("Read events in a READ COMMITTED transaction.")));
}

/*
 * The open publishing transactions (monitoring): up to max entries, lowest
 * position first.  A slot can clear while it is read; an entry whose
 * backend has gone by then shows pid 0 and is left out.
 */
int
order_open_publishers(OrderPublisher *out, int max)
{
	int			n = 0;

	order_require_preload();
	LWLockAcquire(order->lock, LW_SHARED);
	for (int i = 0; i < order->nslots && n < max; i++)
	{
		uint64		first = pg_atomic_read_u64(&order->slots[i]);
		PGPROC	   *proc = &ProcGlobal->allProcs[i];

		if (first == 0 || proc->pid == 0)
			continue;
		out[n].pid = proc->pid;
		out[n].database = proc->databaseId;
		out[n].first_position = (int64) first;
		out[n].since = (TimestampTz) pg_atomic_read_u64(&order->since[i]);
		n++;
	}
	LWLockRelease(order->lock);
	for (int i = 1; i < n; i++)		/* insertion sort: few entries */
	{
		OrderPublisher p = out[i];
		int			j = i;

		for (; j > 0 && out[j - 1].first_position > p.first_position; j--)
			out[j] = out[j - 1];
		out[j] = p;
	}
	return n;
}

/* Slots the open-publisher list may need (one per backend). */
int
order_slot_capacity(void)
{
	order_require_preload();
	return order->nslots;
}
