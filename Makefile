# aegis_events: the PostgreSQL extension (PGXS), the aegis-bridge daemon,
# and the project's test, demo and benchmark entry points.

EXTENSION  = aegis_events
MODULE_big = aegis_events
OBJS       = extension/aegis_events.o extension/order.o extension/notify.o \
             extension/validate.o extension/store.o extension/publish.o \
             extension/read.o extension/trigger.o \
             extension/payload.o extension/monitor.o extension/runs.o extension/maint.o \
             extension/retention.o \
             extension/model.o
DATA       = $(wildcard sql/aegis_events--*.sql)

REGRESS      = install publish validate_workspace validate_conversation \
               readers trigger trigger_columns guard bridge_interface hardening \
               drain_dead_letter runs retention validate_faults \
               upgrade partitions
REGRESS_OPTS = --inputdir=test
ISOLATION    = order_reverse_commit order_three order_abort order_savepoint \
               order_long_running order_prepare \
               runs_claim \
               runs_lease \
               retention_order partition_convert partition_drop
ISOLATION_OPTS = --inputdir=test --load-extension=aegis_events

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# `make` / `make install` build and install the extension alone (PGXS): a
# packager of the extension needs PostgreSQL's server headers only, not
# libwebsockets, librdkafka or jansson.  The daemon has its own targets:
#   make bridge           builds bridge/aegis-bridge
#   make install-bridge   installs it as $(PREFIX)/bin/aegis-bridge
# PREFIX defaults to /usr/local (the bridge is not a PostgreSQL program, so it
# does not go under pg_config's bindir); DESTDIR is honoured by both installs.
PREFIX ?= /usr/local

.PHONY: bridge install-bridge clean-bridge deps test test-cassert soak demo bench-publish bench-drain bench-sse bench-consume bench-runs bench-retention fuzz

bridge:
	$(MAKE) -C bridge all

install-bridge: bridge
	$(MAKE) -C bridge install PREFIX=$(PREFIX)

clean: clean-bridge
clean-bridge:
	-$(MAKE) -C bridge clean

deps:
	bash scripts/install-deps.sh

test:
	bash scripts/install-deps.sh
	$(MAKE) all bridge
	$(MAKE) install install-bridge
	bash test/run

# The extension's pg_regress tests, isolation specs and property test against
# a PostgreSQL 15 built with --enable-cassert from Debian's source package
# (scripts/cassert.sh; the server is built once into CASSERT_PREFIX, default
# /opt/pg-cassert).  Not part of `make test`: the first build is slow.
test-cassert:
	bash scripts/cassert.sh

# The soak test (test/soak/soak.sh): SOAK_MINUTES (default 30) of publishers,
# reconnecting SSE clients, the Kafka drain, a consumer and retention at once;
# chart and verdict in test/out/soak.  `make test` runs it for 2 minutes
# (suite 90-soak).
SOAK_MINUTES ?= 30
soak:
	bash scripts/install-deps.sh
	$(MAKE) all bridge
	$(MAKE) install
	SOAK_MINUTES=$(SOAK_MINUTES) bash test/soak/soak.sh

demo:
	bash scripts/demo.sh $(DEMO_ARGS)

# libFuzzer targets (test/fuzz): each runs FUZZ_SECONDS (default 600);
# `make test` runs each for 10 s (test/suites/45-fuzz.sh).
FUZZ_SECONDS ?= 600
fuzz:
	bash scripts/install-deps.sh
	$(MAKE) -C test/fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

bench-publish:
	bash bench/publish/run.sh

bench-drain:
	bash bench/drain/run.sh

bench-sse:
	bash bench/sse/run.sh
	bash bench/sse/h2.sh

bench-consume:
	bash bench/consume/run.sh

bench-runs:
	bash bench/runs/run.sh
bench-retention:
	bash scripts/install-deps.sh python3-matplotlib
	bash bench/retention/run.sh
