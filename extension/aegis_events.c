/*-------------------------------------------------------------------------
 * aegis_events.c
 *	  Module entry: calls each module's init (which defines its aegis.*
 *	  settings), the shared memory hooks, the transaction callback and the
 *	  DROP DATABASE hook.  The work itself lives in order.c, notify.c,
 *	  validate.c, store.c, publish.c, read.c, trigger.c, runs.c (agent run
 *	  claims) and maint.c (the maintenance worker).  Calls run one way:
 *	  this file calls order.c, notify.c, runs.c and maint.c; notify.c and
 *	  runs.c call order.c; order.c calls neither.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "aegis.h"

PG_MODULE_MAGIC;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(aegis_require_preload_sql);

static void
aegis_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(order_shmem_size(), notify_shmem_size()));
	RequestNamedLWLockTranche("aegis_events", 1);
}

static void
aegis_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	order_shmem_init();
	notify_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/* A database about to be dropped: its notifier must let go of it. */
static void
aegis_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == DatabaseRelationId)
		notify_database_dropped(objectId);
}

/*
 * A publishing transaction ends: its position slot clears first (readers
 * may move on), then its database's notifier is woken.  PREPARE is refused.
 */
static void
aegis_xact_callback(XactEvent event, void *arg)
{
	if (!order_xact_published())
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			order_refuse_prepare();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			order_xact_end();
			notify_commit_wakeup();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			order_xact_end();
			break;
		default:
			break;
	}
}

void
_PG_init(void)
{
	order_init();
	notify_init();
	validate_init();
	runs_init();
	maint_init();
	retention_init();
	MarkGUCPrefixReserved("aegis");
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = aegis_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = aegis_shmem_startup;
	prev_object_access_hook = object_access_hook;
	object_access_hook = aegis_object_access;
	RegisterXactCallback(aegis_xact_callback, NULL);
}

/* Called by the install script so that CREATE EXTENSION fails early. */
Datum
aegis_require_preload_sql(PG_FUNCTION_ARGS)
{
	order_require_preload();
	PG_RETURN_VOID();
}
