/*
 * aegis_events 0.2.0 -> 0.3.0 (round 2): functions the bridge reads the
 * store through, hardening, agent-run leases, retention.  Each part has its
 * own section below.
 */

\echo Use "ALTER EXTENSION aegis_events UPDATE TO '0.3.0'" to load this file. \quit

/* ---- the bridge's interface: functions instead of SQL over internal tables ---- */


/* ---- hardening ---- */

COMMENT ON FUNCTION aegis.emit_row_event() IS
'Trigger: aegis.emit_row_event(topic [, ''columns=a,b'' | ''exclude=a,b''] [, ''oversize=reference'' | ''oversize=error'']) publishes row changes to topic keyed by the primary key; columns=/exclude= choose the published columns; a row event larger than aegis.max_payload_bytes publishes a reference (table, key, bytes) by default, or fails the statement with oversize=error.';


/* ---- agent runs: claims, leases, retries ---- */


/* ---- retention ---- */

