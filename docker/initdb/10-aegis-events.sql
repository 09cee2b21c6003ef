-- docker/initdb/10-aegis-events.sql: run once by the postgres image on a new
-- data directory; the server already preloads aegis_events (see postgres.Dockerfile).
CREATE EXTENSION aegis_events;
