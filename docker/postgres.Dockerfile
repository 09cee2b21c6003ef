# docker/postgres.Dockerfile: PostgreSQL 15 with the aegis_events extension,
# built from this checkout with the same commands as a local install
# (`make && make install` at the repository top), preloaded, and created in
# the database by docker/initdb/. Used by docker-compose.yml; not run by CI.
FROM postgres:15-bookworm

# the extension's build dependencies (a subset of scripts/install-deps.sh's):
# `make` at the top builds the extension alone, not the bridge
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential postgresql-server-dev-15 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src/aegis_events
COPY Makefile aegis_events.control ./
COPY sql/ sql/
COPY extension/ extension/
RUN make && make install

COPY docker/initdb/ /docker-entrypoint-initdb.d/
CMD ["postgres", "-c", "shared_preload_libraries=aegis_events"]
