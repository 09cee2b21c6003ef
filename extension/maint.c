/*-------------------------------------------------------------------------
 * maint.c
 *	  The maintenance worker: one background worker, started with the
 *	  server, connected to the database named by aegis.database_name (as
 *	  pg_cron's launcher is).  Every aegis.maintenance_naptime it runs
 *	  SELECT aegis.maintain() there, when the extension (0.3.0 or later) is
 *	  installed: the clock of agent runs (aegis.enforce_runs) and whatever
 *	  else keeps the store in shape.  Other databases call aegis.maintain()
 *	  from pg_cron.  An error is logged and the next round tries again.
 *
 *	  Each round first makes the partitions of aegis.events that
 *	  aegis.partitions_ahead asks for (and converts a store upgraded from
 *	  0.2.0 to a partitioned one), in a short transaction of its own (so
 *	  publishers see them at once and wait for the conversion only, not for
 *	  a long retention run).  Both
 *	  transactions start by locking the extension object (ACCESS SHARE), the
 *	  first lock DROP EXTENSION takes (ACCESS EXCLUSIVE): the worker and a
 *	  DROP then queue on that one lock instead of taking the extension's
 *	  tables in opposite orders and deadlocking.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "aegis.h"

char	   *aegis_database_name = NULL;
int			aegis_maintenance_naptime = 1000;

#define SQL_INSTALLED \
	"SELECT pg_catalog.to_regprocedure('aegis.maintain()') IS NOT NULL " \
	"AND EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'aegis_events')"
#define SQL_MAINTAIN "SELECT aegis.maintain()"
#define SQL_PARTITIONED \
	"SELECT pg_catalog.to_regprocedure('aegis.partition_events(boolean)') IS NOT NULL"
#define SQL_PARTITIONS \
	"SELECT pg_catalog.set_config('lock_timeout', '1s', true), " \
	"aegis.partition_events(true), " \
	"aegis.partitions_extend(aegis.safe_position(), " \
	"pg_catalog.current_setting('aegis.partitions_ahead')::integer)"

static void
maint_define_settings(void)
{
	/* A PGC_POSTMASTER setting can only be defined while preloading. */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("aegis.database_name",
								   "Database the aegis_events maintenance worker connects to.",
								   "Other databases run SELECT aegis.maintain() from pg_cron.",
								   &aegis_database_name,
								   "postgres", PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("aegis.maintenance_naptime",
							"Time between two rounds of the maintenance worker.",
							"Each round runs SELECT aegis.maintain() in aegis.database_name.",
							&aegis_maintenance_naptime,
							1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* From _PG_init: settings, and the worker when preloaded. */
void
maint_init(void)
{
	BackgroundWorker worker;

	maint_define_settings();
	if (!process_shared_preload_libraries_in_progress)
		return;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "aegis_events");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "aegis_maint_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "aegis_events maintenance");
	snprintf(worker.bgw_type, BGW_MAXLEN, "aegis_events maintenance");
	RegisterBackgroundWorker(&worker);
}

/* Runs one statement of one row; returns its first column as a boolean. */
static bool
maint_exec(const char *sql)
{
	bool		isnull;
	Datum		value;
	int			rc;

	pgstat_report_activity(STATE_RUNNING, sql);
	rc = SPI_execute(sql, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "aegis maintenance query failed: %s", SPI_result_code_string(rc));
	if (TupleDescAttr(SPI_tuptable->tupdesc, 0)->atttypid != BOOLOID)
		return true;
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull && DatumGetBool(value);
}

/*
 * The extension object's ACCESS SHARE lock, held to the end of the
 * transaction: taken first by every worker transaction and by
 * aegis.maintain() (pg_cron), so that DROP EXTENSION, whose first lock is
 * that one in ACCESS EXCLUSIVE mode, queues with them on one lock.  Returns
 * the extension's OID, InvalidOid when it is not installed.
 */
static Oid
maint_lock_extension(void)
{
	Oid			ext = get_extension_oid("aegis_events", true);

	if (OidIsValid(ext))
		LockDatabaseObject(ExtensionRelationId, ext, 0, AccessShareLock);
	return ext;
}

PG_FUNCTION_INFO_V1(aegis_maintenance_lock);

/* SQL aegis.maintenance_lock(): the same lock, for aegis.maintain(). */
Datum
aegis_maintenance_lock(PG_FUNCTION_ARGS)
{
	(void) maint_lock_extension();
	PG_RETURN_VOID();
}

/*
 * One transaction: the extension's lock, then `sql` if the extension is
 * installed (and `check`, when given, is true).  The lock comes before any
 * other: a DROP EXTENSION that got it first has committed by the time this
 * one is granted, and the check (in a snapshot taken after the lock) then
 * finds nothing to do.
 */
static void
maint_transaction(const char *check, const char *sql)
{
	Oid			ext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	ext = maint_lock_extension();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (OidIsValid(ext) && maint_exec(SQL_INSTALLED) && (check == NULL || maint_exec(check)))
	{
		/* a fresh snapshot for the work itself */
		PopActiveSnapshot();
		PushActiveSnapshot(GetTransactionSnapshot());
		maint_exec(sql);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* A failed transaction is logged and forgotten: the next round tries again. */
static void
maint_transaction_guarded(MemoryContext ctx, const char *check, const char *sql)
{
	MemoryContext old = MemoryContextSwitchTo(ctx);

	PG_TRY();
	{
		maint_transaction(check, sql);
		pgstat_report_stat(false);
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(ctx);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextReset(ctx);
}

void
aegis_maint_main(Datum main_arg)
{
	MemoryContext ctx;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(aegis_database_name, NULL, 0);
	pgstat_report_appname("aegis_events maintenance");
	ctx = AllocSetContextCreate(TopMemoryContext, "aegis maintenance",
								ALLOCSET_DEFAULT_SIZES);
	elog(LOG, "aegis_events maintenance worker started in database \"%s\"",
		 aegis_database_name);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* partitions ahead, then aegis.maintain(), each if it exists here */
		maint_transaction_guarded(ctx, SQL_PARTITIONED, SQL_PARTITIONS);
		maint_transaction_guarded(ctx, NULL, SQL_MAINTAIN);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 aegis_maintenance_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
