# docker/bridge.Dockerfile: aegis-bridge and the dashboard (web/), built from
# this checkout with the same commands as a local install (`make bridge &&
# make install-bridge` at the repository top: /usr/local/bin/aegis-bridge),
# then copied into a slim runtime image.
# Used by docker-compose.yml; not run by CI.
FROM debian:bookworm-slim AS build

# the build dependencies of scripts/install-deps.sh
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential pkg-config postgresql-server-dev-15 libpq-dev \
        libwebsockets-dev libev-dev librdkafka-dev libjansson-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src/aegis_events
COPY Makefile aegis_events.control ./
COPY sql/ sql/
COPY extension/ extension/
COPY bridge/ bridge/
RUN make bridge && make install-bridge

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libwebsockets17 libwebsockets-evlib-ev libev4 librdkafka1 libjansson4 libpq5 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/aegis-bridge /usr/local/bin/aegis-bridge
COPY web/ /usr/local/share/aegis-events/web/
USER nobody
EXPOSE 8001
ENV AEGIS_LISTEN=0.0.0.0:8001 AEGIS_STATIC_DIR=/usr/local/share/aegis-events/web
ENTRYPOINT ["/usr/local/bin/aegis-bridge"]
