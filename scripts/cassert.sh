#!/usr/bin/env bash
# scripts/cassert.sh: the extension's tests against a PostgreSQL 15 server
# built with --enable-cassert --enable-debug (`make test-cassert`).
# Owns: fetching Debian 12's postgresql-15 source package with apt, building
# it once into CASSERT_PREFIX (kept and reused while its pg_config says
# --enable-cassert), building the extension against it, and running the
# pg_regress tests + isolation specs (suite 10-extension) and the SQL-level
# property test (suite 12-property) on that server.  Both suites fail on
# "TRAP:" (a failed Assert), PANIC or a crashed backend in the server log;
# this script also greps every server log they left.
# Not part of `make test`: the first build takes ~25 minutes on 2 shared cores.
# Runs as root (apt-get, and test/lib.sh starts servers as postgres).
#   CASSERT_PREFIX   install directory (default /opt/pg-cassert)
#   CASSERT_SRC      where the source package is unpacked (default /opt/src)
#   CASSERT_SUITES   suites to run (default "10 12")
#   PROPERTY_COUNT   payloads for suite 12 (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
PREFIX=${CASSERT_PREFIX:-/opt/pg-cassert}
SRC=${CASSERT_SRC:-/opt/src}
read -r -a SUITES <<<"${CASSERT_SUITES:-10 12}"
say() { echo "cassert: $*"; }

have_cassert_server() {
    [ -x "$PREFIX/bin/pg_config" ] && [ -x "$PREFIX/bin/postgres" ] &&
        "$PREFIX/bin/pg_config" --configure | grep -q -- '--enable-cassert' &&
        grep -q '^#define USE_ASSERT_CHECKING 1' "$("$PREFIX/bin/pg_config" --includedir-server)/pg_config.h" &&
        [ -x "$("$PREFIX/bin/pg_config" --pkglibdir)/pgxs/src/test/isolation/pg_isolation_regress" ]
}

# deb-src entries for the Debian repositories apt already uses (copies of
# their deb entries), unless some are there already
enable_deb_src() {
    if grep -rqsE '^(deb-src |Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        return 0
    fi
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
            >/etc/apt/sources.list.d/aegis-deb-src.sources
    elif grep -qE '^deb ' /etc/apt/sources.list 2>/dev/null; then
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >/etc/apt/sources.list.d/aegis-deb-src.list
    else
        say "no Debian apt source to copy as deb-src" >&2
        return 1
    fi
}

# fetch_source: unpacks postgresql-15 (newest version whose files the
# mirror serves; a security update can be listed before its source is) and
# prints the unpacked directory
fetch_source() {
    local v dir
    mkdir -p "$SRC"
    cd "$SRC"
    for v in $(apt-cache showsrc postgresql-15 | sed -n 's/^Version: //p' | sort -rV | uniq); do
        dir="$SRC/postgresql-15-${v%%-*}"
        if [ -f "$dir/configure" ]; then echo "$dir"; return 0; fi
        if apt-get source -q postgresql-15="$v" >"$SRC/apt-source-$v.log" 2>&1; then
            echo "$dir"; return 0
        fi
        say "source of postgresql-15 $v could not be fetched (see $SRC/apt-source-$v.log)" >&2
    done
    return 1
}

build_server() {
    local dir=$1 start=$SECONDS
    cd "$dir"
    # Debian's 50-per-version-dirs patch pins pkglibdir to the system's
    # /usr/lib/postgresql/15/lib unless libdir names "postgres": a libdir
    # under PREFIX that does keeps every file of this build under PREFIX.
    say "configure in $dir (log $dir/cassert-build.log)"
    # an earlier, unfinished build: start clean (no dependency tracking)
    [ ! -f config.status ] || make -s distclean >/dev/null 2>&1 || true
    ./configure --enable-cassert --enable-debug --prefix="$PREFIX" \
        --libdir="$PREFIX/lib/postgresql" --without-icu --without-llvm \
        >"$dir/cassert-build.log" 2>&1
    say "make (2 jobs, niced)"
    nice make -s -j2 >>"$dir/cassert-build.log" 2>&1
    nice make -s -j2 -C contrib/pageinspect >>"$dir/cassert-build.log" 2>&1
    nice make -s -C src/test/isolation >>"$dir/cassert-build.log" 2>&1
    local pkglib
    pkglib=$(sed -n 's/^#define PKGLIBDIR "\(.*\)"$/\1/p' src/port/pg_config_paths.h)
    case "$pkglib" in
        "$PREFIX"/*) ;;
        *) say "refusing to install: pkglibdir is '$pkglib', outside $PREFIX" >&2; return 1 ;;
    esac
    make -s install >>"$dir/cassert-build.log" 2>&1
    make -s -C contrib/pageinspect install >>"$dir/cassert-build.log" 2>&1
    make -s -C src/test/isolation install >>"$dir/cassert-build.log" 2>&1
    say "server built and installed into $PREFIX in $((SECONDS - start)) s"
}

if have_cassert_server; then
    say "using the cassert server in $PREFIX (delete it to rebuild)"
else
    apt-get install -y -q --no-install-recommends gcc make libreadline-dev zlib1g-dev >/dev/null
    enable_deb_src
    apt-get update -q >/dev/null
    dir=$(fetch_source)
    build_server "$dir"
    have_cassert_server || { say "the build did not leave a cassert server in $PREFIX" >&2; exit 1; }
fi

cd "$TOP"
export PATH="$PREFIX/bin:$PATH" PG_CONFIG="$PREFIX/bin/pg_config" PG_BIN="$PREFIX/bin"
# the extension's objects are built for the cassert server here and removed
# afterwards, so that the next plain `make` builds for the usual server
clean_objects() { rm -f extension/*.o extension/*.bc aegis_events.so; }
trap clean_objects EXIT
clean_objects
make -s -o bridge all >/dev/null
make -s -o bridge install >/dev/null
say "extension installed into $("$PG_CONFIG" --pkglibdir); running suites ${SUITES[*]}"

export AEGIS_TEST_TMP=${AEGIS_TEST_TMP:-/tmp/aegis-cassert}
rm -rf "$AEGIS_TEST_TMP"
status=0
bash test/run "${SUITES[@]}" || status=$?
# every server log the suites left (their data directories are removed)
logs=$(find "$AEGIS_TEST_TMP" -name server.log)
say "$(echo "$logs" | grep -c .) server logs"
if grep -HE 'TRAP:|PANIC|terminated by signal' $logs; then
    say "assertion failure or crash in a server log (above)"
    status=1
else
    say "no TRAP:, PANIC or crashed backend in any server log"
fi
exit "$status"
