#!/usr/bin/env bash
# scripts/install-deps.sh: installs what aegis_events needs on Debian 12 (as
# root, with apt-get), and nothing when everything is already there.
# Used by `make test`, `make demo` and the benchmarks.
set -euo pipefail

# Debian packages the build and the tests need.
packages=(
    build-essential pkg-config
    postgresql-15 postgresql-server-dev-15 libpq-dev
    libwebsockets-dev libwebsockets-evlib-ev libev-dev librdkafka-dev libjansson-dev
    libjwt-dev libssl-dev openssl
    kcat curl jq python3 python3-yaml python3-psycopg python3-matplotlib valgrind procps iproute2
    clang-14 libfuzzer-14-dev
    nginx
    chromium
)
# Tools that may come from elsewhere on the machine; the Debian package otherwise.
declare -A commands=(
    [java]=openjdk-17-jdk-headless
    [mvn]=maven
    [node]=nodejs
    [npm]=npm
)
# Extra packages a caller asks for (e.g. the SSE benchmark's nginx + nchan).
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for c in "${!commands[@]}"; do
    command -v "$c" >/dev/null 2>&1 || missing+=("${commands[$c]}")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: everything is installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing ${missing[*]}; run as root (apt-get install)" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
# The Debian package starts a cluster of its own on port 5432; tests start
# their own clusters and do not need it.
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1, $2}' | while read -r v n; do
        pg_ctlcluster "$v" "$n" stop || true
    done
fi
# nginx's package may start its default site (port 80, every address); the
# TLS suite runs an nginx of its own on loopback.
if [ -x /etc/init.d/nginx ] && pgrep -x nginx >/dev/null 2>&1; then
    /etc/init.d/nginx stop >/dev/null 2>&1 || true
fi
echo "install-deps: done"
