/*-------------------------------------------------------------------------
 * aegis.h
 *	  Declarations shared by the modules of the aegis_events extension:
 *	  settings, the commit-order horizon (order.c), wake-ups (notify.c),
 *	  validation (validate.c) and the row writer (store.c).
 *-------------------------------------------------------------------------
 */
#ifndef AEGIS_H
#define AEGIS_H

#include "postgres.h"

#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#define AEGIS_NOTIFY_CHANNEL "aegis_events"

/*
 * Settings, each defined by the init function of the module that owns it
 * (called by _PG_init in aegis_events.c).
 */
extern int	aegis_max_databases;	/* order.c */
extern int	aegis_notifier_idle_timeout;	/* notify.c */
extern int	aegis_max_payload_bytes;	/* validate.c */
extern bool aegis_require_configured_agents;	/* runs.c */
extern int	aegis_max_open_runs;	/* runs.c */
extern char *aegis_database_name;	/* maint.c */
extern int	aegis_maintenance_naptime;	/* maint.c */

/* order.c: positions and the safe position */
extern void order_init(void);
extern void order_require_preload(void);
extern Size order_shmem_size(void);
extern void order_shmem_init(void);
extern bool order_xact_published(void);
extern void order_refuse_prepare(void);
extern void order_xact_end(void);
extern int64 order_assign_position(void);
extern int64 order_safe_position(void);
extern int64 order_last_position(void);
extern void order_check_reader_isolation(void);
extern int64 order_wait_for_position(int64 seen, TimestampTz deadline);

typedef struct OrderPublisher
{
	int			pid;
	Oid			database;
	int64		first_position; /* the lowest position it holds open */
	TimestampTz since;			/* start of the statement that took it */
} OrderPublisher;

extern int	order_slot_capacity(void);
extern int	order_open_publishers(OrderPublisher *out, int max);

/* notify.c: coalesced NOTIFY from a per-database background worker */
extern void notify_init(void);
extern Size notify_shmem_size(void);
extern void notify_shmem_init(void);
extern void notify_commit_wakeup(void);
extern void notify_database_dropped(Oid dboid);
extern PGDLLEXPORT void aegis_notifier_main(Datum main_arg);

/* runs.c: claiming and waiting for agent runs */
extern void runs_init(void);

/* maint.c: the maintenance worker (aegis.maintain() every naptime) */
extern void maint_init(void);
extern PGDLLEXPORT void aegis_maint_main(Datum main_arg);

/* retention.c */
extern int	aegis_retention_interval;
extern bool aegis_retention_deleting;
extern int	aegis_partition_width;
extern int	aegis_partitions_ahead;
extern void retention_init(void);

/* store.c: writing one event row */
typedef struct AegisEvent
{
	const char *stream_kind;	/* workspace, conversation, topic, run */
	text	   *stream_id;
	text	   *event_type;
	Jsonb	   *payload;
	text	   *topic;			/* NULL: not for Kafka */
	text	   *key;
	Jsonb	   *headers;
} AegisEvent;

extern int64 store_publish(const AegisEvent *event);

/* payload.c: building stored jsonb objects */
extern void payload_begin(JsonbParseState **state);
extern Jsonb *payload_end(JsonbParseState **state);
extern void payload_string(JsonbParseState **state, const char *key, const char *val, int len);
extern void payload_text(JsonbParseState **state, const char *key, text *val);
extern void payload_jsonb(JsonbParseState **state, const char *key, Jsonb *value);
extern Jsonb *payload_add_string(Jsonb *object, const char *key, const char *val);

/* validate.c: the event models */
extern void validate_init(void);
extern void validate_workspace_event(const char *event_type, Jsonb *payload);
extern void validate_conversation_event(const char *event, const char *node,
										Jsonb *data);
extern void validate_stream_id(const char *what, text *id);
extern void validate_topic_name(text *topic);
extern void validate_headers(Jsonb *headers);
extern void validate_size(const char *what, Size bytes);
extern const char *validate_workspace_type_name(const char *event_type);

#endif							/* AEGIS_H */
