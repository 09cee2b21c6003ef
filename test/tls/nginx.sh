# shellcheck shell=bash
# test/tls/nginx.sh: runs Debian's nginx for the reverse-proxy tests (sourced
# after test/lib.sh, not run). Owns: a config made from the documented server
# block in docs/deploy.md (only the listen address, certificate paths and the
# bridge's port replaced), one nginx process in the foreground (no daemon, no
# master: one pid) on a loopback port, logs and temp files in one directory.

NGINX_BIN=${AEGIS_NGINX:-/usr/sbin/nginx}
NGINX_PID=

# nginx_doc_block: the nginx block of docs/deploy.md, as documented
nginx_doc_block() {
    sed -n '/<!-- nginx-begin -->/,/<!-- nginx-end -->/p' "$AEGIS_TOP/docs/deploy.md" \
        | sed '1d;$d' | sed '/^```/d'
}

# nginx_config DIR PORT BRIDGE_PORT CERT KEY: writes DIR/nginx.conf; 1 if the
# documented block lacks one of the lines it replaces
nginx_config() {
    local dir=$1 port=$2 bport=$3 cert=$4 key=$5 block
    block=$(nginx_doc_block)
    for want in "listen 443 ssl http2;" "server 127.0.0.1:8080;" \
        "ssl_certificate     /etc/ssl/aegis/fullchain.pem;" \
        "ssl_certificate_key /etc/ssl/aegis/privkey.pem;"; do
        grep -qF "$want" <<<"$block" || { echo "docs/deploy.md's block lacks: $want" >&2; return 1; }
    done
    mkdir -p "$dir/tmp"
    {
        echo "daemon off;"
        echo "master_process off;"
        echo "worker_processes 1;"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/error.log info;"
        echo "events { worker_connections 1024; }"
        echo "http {"
        echo "    access_log $dir/access.log;"
        for t in client_body proxy fastcgi uwsgi scgi; do echo "    ${t}_temp_path $dir/tmp/$t;"; done
        sed -e "s|listen 443 ssl http2;|listen 127.0.0.1:$port ssl http2;|" \
            -e "s|server 127.0.0.1:8080;|server 127.0.0.1:$bport;|" \
            -e "s|/etc/ssl/aegis/fullchain.pem|$cert|" \
            -e "s|/etc/ssl/aegis/privkey.pem|$key|" <<<"$block"
        echo "}"
    } >"$dir/nginx.conf"
}

# nginx_start DIR PORT: starts nginx on DIR/nginx.conf, waits until PORT answers TLS
nginx_start() {
    local dir=$1 port=$2
    "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >>"$dir/stdout.log" 2>&1 &
    NGINX_PID=$!
    wait_for 20 curl -sk -o /dev/null "https://127.0.0.1:$port/"
}

# nginx_stop: stops the nginx this shell started (by pid)
nginx_stop() {
    kill_pid "$NGINX_PID"
    NGINX_PID=
}
