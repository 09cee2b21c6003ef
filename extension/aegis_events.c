/*-------------------------------------------------------------------------
 * aegis_events.c
 *	  Module entry: settings (aegis.*), shared memory hooks, transaction
 *	  callbacks and the DROP DATABASE hook.  The work itself lives in
 *	  order.c, notify.c, validate.c, store.c, publish.c, read.c, trigger.c.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

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

int			aegis_max_payload_bytes = 960 * 1024;
int			aegis_notifier_idle_timeout = 10;
int			aegis_max_databases = 16;
bool		aegis_preloaded = false;

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

static void
aegis_define_settings(void)
{
	DefineCustomIntVariable("aegis.max_payload_bytes",
							"Largest event payload accepted by the publish functions.",
							"Measured as the stored (jsonb) size of payload, key and headers. "
							"The default leaves room for the bridge's headers within "
							"Kafka's default 1000000-byte message limit.",
							&aegis_max_payload_bytes,
							960 * 1024, 1024, 256 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("aegis.notifier_idle_timeout",
							"Seconds a database's notifier worker waits idle before it exits.",
							"It is started again by the next publishing commit.",
							&aegis_notifier_idle_timeout,
							10, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	/* A PGC_POSTMASTER setting can only be defined while preloading. */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("aegis.max_databases",
								"Databases of the cluster that may use aegis_events at once.",
								NULL,
								&aegis_max_databases,
								16, 1, 1024, PGC_POSTMASTER, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("aegis");
}

void
_PG_init(void)
{
	/* before aegis_define_settings reserves the prefix */
	runs_init();
	maint_init();
	retention_init();
	aegis_define_settings();
	if (!process_shared_preload_libraries_in_progress)
		return;
	aegis_preloaded = true;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = aegis_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = aegis_shmem_startup;
	prev_object_access_hook = object_access_hook;
	object_access_hook = aegis_object_access;
	order_register_callbacks();
}

/* Everything that touches shared memory starts with this check. */
void
aegis_require_preload(void)
{
	if (!aegis_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aegis_events must be loaded via shared_preload_libraries"),
				 errdetail("The commit-order horizon and the wake-up worker live in shared memory."),
				 errhint("Add aegis_events to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Called by the install script so that CREATE EXTENSION fails early. */
Datum
aegis_require_preload_sql(PG_FUNCTION_ARGS)
{
	aegis_require_preload();
	PG_RETURN_VOID();
}
