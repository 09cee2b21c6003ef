/*-------------------------------------------------------------------------
 * monitor.c
 *	  aegis.publisher_slots(): the open publishing transactions as order.c's
 *	  shared memory holds them (backend pid, database, the lowest position
 *	  each holds open, since when), lowest position first.  The first row
 *	  is the transaction the safe position waits for.  The SQL functions
 *	  and the view aegis.open_publishers add names and session state.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/timestamp.h"

#include "aegis.h"

PG_FUNCTION_INFO_V1(aegis_publisher_slots);

#define PUBLISHER_COLUMNS 4

Datum
aegis_publisher_slots(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			max = order_slot_capacity();
	OrderPublisher *open = palloc(sizeof(OrderPublisher) * max);
	int			n = order_open_publishers(open, max);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
	{
		Datum		values[PUBLISHER_COLUMNS];
		bool		nulls[PUBLISHER_COLUMNS] = {false};

		values[0] = Int32GetDatum(open[i].pid);
		values[1] = ObjectIdGetDatum(open[i].database);
		values[2] = Int64GetDatum(open[i].first_position);
		values[3] = TimestampTzGetDatum(open[i].since);
		nulls[3] = (open[i].since == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(open);
	return (Datum) 0;
}
