-- install: the extension installs at the default version, with preload
CREATE EXTENSION aegis_events;
SELECT extversion FROM pg_extension WHERE extname = 'aegis_events';
SELECT aegis.require_preload();
SHOW aegis.max_payload_bytes;
SHOW aegis.notifier_idle_timeout;
-- the aegis.* prefix is reserved: a typo in a setting name is an error
SET aegis.max_payload_byte = 10;
-- settings refuse bad values
SET aegis.max_payload_bytes = 12;
SET aegis.max_payload_bytes = 'lots';
-- the tables, the enum of workspace types, the functions
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'aegis' AND c.relkind IN ('r', 'v', 'p') AND NOT c.relispartition ORDER BY 1;
SELECT enum_range(NULL::aegis.workspace_event_type);
-- (the consumer module's functions, consume*, are tested by suite 55)
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'aegis' AND p.proname NOT LIKE 'consume%' ORDER BY 1;
-- nothing is granted to PUBLIC
SELECT count(*) AS public_grants FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'aegis' AND has_function_privilege('public', p.oid, 'EXECUTE');
-- a helper used by the later tests: run SQL, return 'ok' or SQLSTATE: message
CREATE FUNCTION public.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
