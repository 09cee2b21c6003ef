/*
 * aegis_events 0.2.0 -> 0.3.0 (round 2): functions the bridge reads the
 * store through, hardening, agent-run leases, retention.  Each part has its
 * own section below.
 */

\echo Use "ALTER EXTENSION aegis_events UPDATE TO '0.3.0'" to load this file. \quit

/* ---- the bridge's interface: functions instead of SQL over internal tables ---- */


/* ---- hardening ---- */


/* ---- agent runs: claims, leases, retries ---- */


/* ---- retention ---- */

