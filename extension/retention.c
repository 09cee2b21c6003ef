/*-------------------------------------------------------------------------
 * retention.c
 *	  Settings of retention (the policies themselves are SQL, in the 0.3.0
 *	  upgrade script's retention section):
 *	  - aegis.retention_interval: how often aegis.maintain() runs
 *	    aegis.enforce_retention() (the maintenance worker calls maintain()
 *	    every aegis.maintenance_naptime);
 *	  - aegis.retention_deleting: a superuser-only flag that
 *	    aegis.enforce_retention (SECURITY DEFINER, owned by the extension's
 *	    superuser owner) sets for its own duration; while it is on, the
 *	    append-only guard lets DELETE through.  Ordinary users cannot set
 *	    it, so for them aegis.events stays append-only;
 *	  - aegis.partition_width: positions per partition of aegis.events
 *	    (aegis.partitions_extend makes partitions of this width);
 *	  - aegis.partitions_ahead: how many empty partitions aegis.maintain()
 *	    and the maintenance worker keep above the safe position.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "aegis.h"

int			aegis_retention_interval = 60;
bool		aegis_retention_deleting = false;
int			aegis_partition_width = 1000000;
int			aegis_partitions_ahead = 2;

/* From _PG_init, before the "aegis" prefix is reserved. */
void
retention_init(void)
{
	DefineCustomIntVariable("aegis.retention_interval",
							"Time between two runs of aegis.enforce_retention() by aegis.maintain().",
							"The maintenance worker calls aegis.maintain() every aegis.maintenance_naptime.",
							&aegis_retention_interval,
							60, 1, 7 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomBoolVariable("aegis.retention_deleting",
							 "Set by aegis.enforce_retention while it removes expired events.",
							 "Lets DELETE on aegis.events past the append-only guard; superuser only.",
							 &aegis_retention_deleting,
							 false, PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("aegis.partition_width",
							"Positions per partition of aegis.events.",
							"Applies to partitions made from now on; existing ones keep their bounds.",
							&aegis_partition_width,
							1000000, 10, PG_INT32_MAX, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("aegis.partitions_ahead",
							"Empty partitions of aegis.events kept above the safe position.",
							"aegis.maintain() and the maintenance worker make them; a publish "
							"beyond the last partition makes one itself.",
							&aegis_partitions_ahead,
							2, 0, 100, PGC_SUSET, 0, NULL, NULL, NULL);
}
