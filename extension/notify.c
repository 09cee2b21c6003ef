/*-------------------------------------------------------------------------
 * notify.c
 *	  Wake-ups without serialising publishers.  A publishing commit sets the
 *	  latch of its database's notifier worker (started on demand); the worker
 *	  issues one NOTIFY aegis_events for all commits since its last one, in a
 *	  tiny transaction of its own.  Only the worker takes NOTIFY's commit
 *	  lock.  The payload is the counter (a position), never an event.
 *	  After a NOTIFY the worker stays awake for a moment (notifier_linger),
 *	  so under a steady stream of commits their SetLatch finds it awake and
 *	  sends no signal: a signal per publishing commit cost the publisher
 *	  ~10% of its time (bench/runs/README.md).
 *	  Owns the setting aegis.notifier_idle_timeout, which a reload (SIGHUP)
 *	  changes in running workers.  Calls order.c for the position only.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "aegis.h"

typedef struct Notifier
{
	Oid			dboid;			/* InvalidOid: free entry */
	Latch	   *latch;			/* the running worker's latch, or NULL */
	pid_t		pid;
	bool		starting;		/* registered, not yet running */
	bool		dropped;		/* database is being dropped */
	TimestampTz start_requested;
	bool		pending;		/* commits since the last NOTIFY */
} Notifier;

typedef struct NotifyShared
{
	slock_t		mutex;
	pg_atomic_uint64 notifies;	/* NOTIFYs sent, for tests and monitoring */
	Notifier	entries[FLEXIBLE_ARRAY_MEMBER];
} NotifyShared;

int			aegis_notifier_idle_timeout = 10;

static NotifyShared *notify = NULL;
static volatile sig_atomic_t got_sigterm = false;

/* Called by _PG_init. */
void
notify_init(void)
{
	DefineCustomIntVariable("aegis.notifier_idle_timeout",
							"Seconds a database's notifier worker waits idle before it exits.",
							"It is started again by the next publishing commit.",
							&aegis_notifier_idle_timeout,
							10, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

Size
notify_shmem_size(void)
{
	return add_size(offsetof(NotifyShared, entries),
					mul_size(aegis_max_databases, sizeof(Notifier)));
}

void
notify_shmem_init(void)
{
	bool		found;

	notify = ShmemInitStruct("aegis_events notify", notify_shmem_size(), &found);
	if (found)
		return;
	SpinLockInit(&notify->mutex);
	pg_atomic_init_u64(&notify->notifies, 0);
	for (int i = 0; i < aegis_max_databases; i++)
		memset(&notify->entries[i], 0, sizeof(Notifier));
}

/* Caller holds the mutex. */
static Notifier *
notifier_for(Oid dboid, bool create)
{
	Notifier   *free_entry = NULL;

	for (int i = 0; i < aegis_max_databases; i++)
	{
		Notifier   *n = &notify->entries[i];

		if (n->dboid == dboid)
			return n;
		if (n->dboid == InvalidOid && free_entry == NULL)
			free_entry = n;
	}
	if (create && free_entry != NULL)
	{
		memset(free_entry, 0, sizeof(Notifier));
		free_entry->dboid = dboid;
	}
	return create ? free_entry : NULL;
}

static bool
notifier_register(Oid dboid)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "aegis_events");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "aegis_notifier_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "aegis_events notifier %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "aegis_events notifier");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = 0;
	return RegisterDynamicBackgroundWorker(&worker, NULL);
}

/*
 * Commit callback of a publishing transaction: must not fail.  Marks the
 * database pending and wakes (or starts) its notifier.
 */
void
notify_commit_wakeup(void)
{
	Notifier   *n;
	Latch	   *latch = NULL;
	bool		start = false;
	TimestampTz now = GetCurrentTimestamp();

	if (notify == NULL)
		return;
	SpinLockAcquire(&notify->mutex);
	n = notifier_for(MyDatabaseId, true);
	if (n != NULL && !n->dropped)
	{
		n->pending = true;
		latch = n->latch;
		if (latch == NULL &&
			(!n->starting ||
			 TimestampDifferenceExceeds(n->start_requested, now, 5000)))
		{
			n->starting = true;
			n->start_requested = now;
			start = true;
		}
	}
	SpinLockRelease(&notify->mutex);

	if (latch != NULL)
		SetLatch(latch);
	else if (start && !notifier_register(MyDatabaseId))
	{
		SpinLockAcquire(&notify->mutex);
		n->starting = false;
		SpinLockRelease(&notify->mutex);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the aegis_events notifier for this database"),
				 errdetail("Events are stored; LISTENers on \"%s\" are woken by the next commit that can start it.",
						   AEGIS_NOTIFY_CHANNEL),
				 errhint("Raise max_worker_processes.")));
	}
}

/* DROP DATABASE: tell its notifier to exit so the drop does not wait. */
void
notify_database_dropped(Oid dboid)
{
	Notifier   *n;
	pid_t		pid = 0;

	if (notify == NULL)
		return;
	SpinLockAcquire(&notify->mutex);
	n = notifier_for(dboid, false);
	if (n != NULL)
	{
		n->dropped = true;
		pid = n->latch != NULL ? n->pid : 0;
	}
	SpinLockRelease(&notify->mutex);
	if (pid != 0)
		kill(pid, SIGTERM);
}

static void
notifier_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
notifier_send(void)
{
	char		payload[32];

	StartTransactionCommand();
	snprintf(payload, sizeof(payload), INT64_FORMAT, order_last_position());
	Async_Notify(AEGIS_NOTIFY_CHANNEL, payload);
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pg_atomic_fetch_add_u64(&notify->notifies, 1);
}

/*
 * After a NOTIFY: look for more commits every NOTIFIER_POLL_US, up to
 * NOTIFIER_LINGER_US, before sleeping on the latch.  Not in WaitLatch, the
 * worker's latch is not "maybe sleeping", so a publisher's SetLatch only
 * sets it (no kill()).  Returns whether a commit came; a commit then waits
 * at most about one poll for its NOTIFY.
 */
#define NOTIFIER_POLL_US 100
#define NOTIFIER_LINGER_US 1000

static bool
notifier_linger(Notifier *n)
{
	for (int waited = 0; waited < NOTIFIER_LINGER_US; waited += NOTIFIER_POLL_US)
	{
		bool		pending;

		pg_usleep(NOTIFIER_POLL_US);
		if (got_sigterm || ConfigReloadPending)
			return false;
		SpinLockAcquire(&notify->mutex);
		pending = n->pending;
		SpinLockRelease(&notify->mutex);
		if (pending)
			return true;
	}
	return false;
}

/*
 * Take the pending flag and decide whether to stop: when idle for long
 * enough, told to stop (SIGTERM) or the database is being dropped.  Leaving
 * the entry happens under the mutex, so a commit either sees this worker's
 * latch or starts a new worker.  Returns whether a NOTIFY is owed; one is
 * sent even when stopping, unless the database is going away.
 */
static bool
notifier_take_pending(Notifier *n, bool may_exit, bool *exit_now)
{
	bool		pending;
	bool		dropped;

	SpinLockAcquire(&notify->mutex);
	pending = n->pending;
	n->pending = false;
	dropped = n->dropped;
	*exit_now = dropped || got_sigterm || (may_exit && !pending);
	if (*exit_now)
	{
		n->latch = NULL;
		n->pid = 0;
		n->starting = false;
		if (dropped)
			n->dboid = InvalidOid;
	}
	SpinLockRelease(&notify->mutex);
	return pending && !dropped;
}

void
aegis_notifier_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	Notifier   *n;
	bool		exit_now = false;
	bool		idle = false;

	pqsignal(SIGTERM, notifier_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("aegis_events notifier");

	SpinLockAcquire(&notify->mutex);
	n = notifier_for(dboid, true);
	if (n == NULL || n->latch != NULL || n->dropped)
	{
		SpinLockRelease(&notify->mutex);
		proc_exit(0);
	}
	n->latch = MyLatch;
	n->pid = MyProcPid;
	n->starting = false;
	SpinLockRelease(&notify->mutex);

	for (;;)
	{
		bool		sent = false;

		if (notifier_take_pending(n, idle, &exit_now))
		{
			notifier_send();
			sent = true;
		}
		if (exit_now)
			break;
		idle = false;
		if (sent && notifier_linger(n))
			continue;
		idle = (WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						  aegis_notifier_idle_timeout * 1000L,
						  PG_WAIT_EXTENSION) & WL_TIMEOUT) != 0;
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			/* a new idle timeout applies from the next wait */
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			idle = false;
		}
	}
	proc_exit(0);
}
