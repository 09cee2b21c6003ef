#!/usr/bin/env bash
# 62-auth: authorization over HTTP against a real PostgreSQL and the bridge's
# ASan/UBSan build, with curl: 401/403/200 for each token source (bearer,
# cookie, ?access_token=) and every refusal class, /metrics and /healthz,
# runs by POST and by GET ?message= (the run claim; nothing recorded when
# refused), the stream closed at the token's exp and resumed with a new
# token (every event exactly once), the SQL policy function (allow, deny,
# error, NULL, missing or wrong signature at start), deny by default off
# loopback (started on 0.0.0.0 and stopped at once; no request goes there),
# CSRF (fetch metadata, Origin), Host (DNS rebinding), %0A in ?message=, a
# symlink out of --static-dir, nosniff/CSP/CORS headers, and that no token
# ever reaches the logs.
set -u
source "$(dirname "$0")/../lib.sh"

BIN=${AEGIS_BRIDGE_BIN:-$AEGIS_TOP/bridge/aegis-bridge-asan}
FORGE=(python3 "$AEGIS_TOP/test/auth/forge.py")
WORK=$(mktemp -d "$AEGIS_TEST_TMP/auth-XXXXXX")
LOG=$WORK/bridge.log
BRIDGE_PID=
TOKENS=$WORK/tokens          # every token used, for the log grep

cleanup() {
    kill_pid "$BRIDGE_PID"
    pg_stop_all
    if [ "$TESTS_FAILED" -eq 0 ]; then rm -rf "$WORK"; else echo "# kept $WORK"; fi
}
trap cleanup EXIT

if [ -z "${AEGIS_BRIDGE_BIN:-}" ]; then
    make -s -C "$AEGIS_TOP/bridge" all asan >/dev/null || { not_ok "bridge builds (plain and ASan)"; finish; exit 1; }
fi
pg_start auth || { not_ok "postgres starts"; finish; exit 1; }
psql -qX -c "CREATE EXTENSION aegis_events" || { not_ok "extension installs"; finish; exit 1; }
# runs are taken for configured agent types only (0.3.0, when aegis.configure_agent exists)
psql -qX -c "DO \$\$ BEGIN IF to_regproc('aegis.configure_agent') IS NOT NULL THEN
    PERFORM aegis.configure_agent('rule_37', queue_timeout => '1 hour'); END IF; END \$\$" \
    || { not_ok "agent type rule_37 configured"; finish; exit 1; }

SECRET=$WORK/jwt.secret
head -c 48 /dev/urandom | base64 | tr -d '\n' >"$SECRET"
mkdir -p "$WORK/static" "$WORK/outside"
cp -r "$AEGIS_TOP/web/." "$WORK/static/"
echo "password = hunter2" >"$WORK/outside/postgresql.conf"
ln -s "$WORK/outside/postgresql.conf" "$WORK/static/conf.txt"
ln -s "$WORK/outside" "$WORK/static/out"

PORT=$(free_port)
B=http://127.0.0.1:$PORT
AUD=aegis-test ISS=test-idp
start_bridge() {   # start_bridge [extra flags...]
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        "$BIN" --listen "127.0.0.1:$PORT" --no-drain --log-level debug --heartbeat-seconds 1 \
        --retry-ms 500 --static-dir "$WORK/static" --cors-origin http://allowed.test \
        --auth-jwt-key "$SECRET" --auth-jwt-audience "$AUD" --auth-jwt-issuer "$ISS" "$@" \
        >>"$LOG" 2>&1 &
    BRIDGE_PID=$!
    wait_for 30 curl -sf "$B/healthz"
}
stop_bridge() { kill_pid "$BRIDGE_PID"; BRIDGE_PID=; }
q() { psql -qAtX -c "$1"; }
mint() {   # mint ARGS...: a good token (recorded for the log grep)
    local t
    t=$("$BIN" token --key "$SECRET" --aud "$AUD" --iss "$ISS" "$@") || return 1
    echo "$t" >>"$TOKENS"
    echo "$t"
}
forge() {
    local t
    t=$("${FORGE[@]}" "$SECRET" "$@") || return 1
    echo "$t" >>"$TOKENS"
    echo "$t"
}
# code URL [curl args...]: the status of a GET that gives up after 2 s (streams never end)
code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" || true; }
# answer URL [curl args...]: "status|first body line|www-authenticate" of a refusal
answer() {
    local h b
    h=$(mktemp "$WORK/h.XXXXXX"); b=$(mktemp "$WORK/b.XXXXXX")
    curl -s -D "$h" -o "$b" -m 2 "$@" >/dev/null || true
    printf '%s|%s|%s' "$(awk 'NR==1{print $2}' "$h")" "$(head -1 "$b")" \
        "$(grep -i '^www-authenticate:' "$h" | cut -d' ' -f2- | tr -d '\r')"
}
runs() { q "SELECT count(*) FROM aegis.run_requests"; }

check "bridge starts with --auth-jwt-key" start_bridge

WS=$B/workspaces/chk-42/stream
CHALLENGE='Bearer realm="aegis", error="invalid_token"'
GOOD=$(mint --subscribe workspace:chk-42 --subscribe 'conversation:conv-42-*' --run rule_37 --sub user-17)
OTHER=$(mint --subscribe workspace:chk-43 --sub user-18)
q "SELECT aegis.publish_agent_status('chk-42', 'running', 'one')" >/dev/null

# ---- the three token sources ----
expect_eq "no token: 401 with the challenge and the reason" "401|unauthorized: no token (send Authorization: Bearer, the aegis_token cookie or ?access_token=)|$CHALLENGE" "$(answer "$WS")"
expect_eq "bearer token covering the workspace: 200" 200 "$(code "$WS" -H "Authorization: Bearer $GOOD")"
expect_eq "cookie aegis_token covering the workspace: 200" 200 "$(code "$WS" -H "Cookie: theme=dark; aegis_token=$GOOD")"
expect_eq "?access_token= covering the workspace: 200" 200 "$(code "$WS?access_token=$GOOD")"
expect_eq "bearer for another workspace: 403" 403 "$(code "$WS" -H "Authorization: Bearer $OTHER")"
expect_eq "cookie for another workspace: 403" 403 "$(code "$WS" -H "Cookie: aegis_token=$OTHER")"
expect_eq "query token for another workspace: 403" 403 "$(code "$WS?access_token=$OTHER")"
expect_eq "403 is the same for a stream that does not exist" \
    "$(answer "$WS" -H "Authorization: Bearer $OTHER")" \
    "$(answer "$B/workspaces/no-such-thing/stream" -H "Authorization: Bearer $OTHER")"
expect_eq "conversation pattern conv-42-*: conv-42-1 allowed" 200 \
    "$(code "$B/conversations/conv-42-1/stream" -H "Authorization: Bearer $GOOD")"
expect_eq "conversation pattern conv-42-*: conv-42 refused" 403 \
    "$(code "$B/conversations/conv-42/stream" -H "Authorization: Bearer $GOOD")"
expect_eq "bearer wins over a bad cookie" 200 "$(code "$WS" -H "Authorization: Bearer $GOOD" -H "Cookie: aegis_token=$OTHER")"

# ---- every refusal class gets 401 and says which ----
refused() {   # refused NAME TOKEN REASON
    expect_eq "$1: 401, challenge, reason" "401|unauthorized: $3|$CHALLENGE" \
        "$(answer "$WS" -H "Authorization: Bearer $2")"
}
AEGIS='"aegis":{"subscribe":["workspace:chk-42"]}'
refused "bad signature" "$(forge "{$AEGIS,\"aud\":\"$AUD\",\"iss\":\"$ISS\"}" --exp-in 600 --tamper)" "bad signature"
refused "signed with another secret" "$(head -c 40 /dev/urandom | base64 >"$WORK/other.secret"; \
    "${FORGE[@]}" "$WORK/other.secret" "{$AEGIS,\"aud\":\"$AUD\",\"iss\":\"$ISS\"}" --exp-in 600 | tee -a "$TOKENS")" "bad signature"
refused "alg none" "$(forge "{$AEGIS,\"aud\":\"$AUD\",\"iss\":\"$ISS\"}" --exp-in 600 --alg none)" \
    "unsigned token (alg none) refused"
refused "HS512 header on an HS256 bridge" "$(forge "{$AEGIS}" --exp-in 600 --header '{"alg":"HS512"}')" \
    "token signed with another algorithm than the configured one"
refused "expired" "$(forge "{$AEGIS,\"aud\":\"$AUD\",\"iss\":\"$ISS\"}" --exp-in -60)" "token expired"
refused "nbf in the future" "$(forge "{$AEGIS,\"aud\":\"$AUD\",\"iss\":\"$ISS\"}" --exp-in 600 --nbf-in 300)" \
    "token not yet valid (nbf)"
refused "wrong audience" "$(forge "{$AEGIS,\"aud\":\"other\",\"iss\":\"$ISS\"}" --exp-in 600)" "wrong audience (aud)"
refused "wrong issuer" "$(forge "{$AEGIS,\"aud\":\"$AUD\",\"iss\":\"evil\"}" --exp-in 600)" "wrong issuer (iss)"
refused "missing exp" "$(forge "{$AEGIS,\"aud\":\"$AUD\",\"iss\":\"$ISS\"}")" "token has no exp claim"
refused "bad base64url" 'eyJhbGciOiJIUzI1NiJ9.e$J.c2ln' "malformed token: not three base64url parts"
refused "not a JWT" 'hello' "malformed token: not three base64url parts"
refused "aegis not an object" "$(forge "{\"aegis\":\"workspace:*\",\"aud\":\"$AUD\",\"iss\":\"$ISS\"}" --exp-in 600)" \
    "malformed claims: exp/nbf/iat must be numbers, aegis an object with subscribe and run arrays of strings and metrics a boolean"
refused "subscribe not an array of strings" \
    "$(forge "{\"aegis\":{\"subscribe\":[42]},\"aud\":\"$AUD\",\"iss\":\"$ISS\"}" --exp-in 600)" \
    "malformed claims: exp/nbf/iat must be numbers, aegis an object with subscribe and run arrays of strings and metrics a boolean"
BIG=$(head -c 3000 /dev/zero | tr '\0' 'a')
refused "oversized (9000 bytes)" "$BIG.$BIG.$BIG" "token too long (over 8192 bytes)"
P=$(printf 'not json' | base64 | tr '+/' '-_' | tr -d '=')
refused "payload not JSON" "eyJhbGciOiJIUzI1NiJ9.$P.c2ln" "malformed token: payload is not a JSON object"
expect_eq "expired cookie: 401" 401 "$(code "$WS" -H "Cookie: aegis_token=$(forge "{$AEGIS}" --exp-in -60)")"
expect_eq "expired query token: 401" 401 "$(code "$WS?access_token=$(forge "{$AEGIS}" --exp-in -60)")"

# ---- /healthz and /metrics ----
expect_eq "/healthz needs no token" 200 "$(code "$B/healthz")"
expect_eq "/metrics without a token: 401" 401 "$(code "$B/metrics")"
expect_eq "/metrics with a token without metrics: 403" 403 "$(code "$B/metrics" -H "Authorization: Bearer $GOOD")"
METRICS=$(mint --metrics)
expect_eq "/metrics with metrics:true: 200" 200 "$(code "$B/metrics" -H "Authorization: Bearer $METRICS")"

# ---- runs: POST and GET ?message= ----
before=$(runs)
NORUN=$(mint --subscribe 'conversation:*')
expect_eq "GET ?message= without the run claim: 403" 403 \
    "$(code "$B/conversations/conv-42-1/stream?message=hi&agent_type=rule_37" -H "Authorization: Bearer $NORUN")"
expect_eq "GET ?message= with a run claim for another agent type: 403" 403 \
    "$(code "$B/conversations/conv-42-1/stream?message=hi&agent_type=rule_99" -H "Authorization: Bearer $GOOD")"
expect_eq "refused GET run requests recorded nothing" "$before" "$(runs)"
expect_eq "GET ?message= with the run claim: 200" 200 \
    "$(code "$B/conversations/conv-42-1/stream?message=hello%20get&agent_type=rule_37" -H "Authorization: Bearer $GOOD")"
expect_eq "the GET run request is recorded" "hello get|rule_37" \
    "$(q "SELECT message || '|' || agent_type FROM aegis.run_requests WHERE conversation_id = 'conv-42-1'")"
post() {   # post ID BODY [curl args...]: "status|body"
    local id=$1 body=$2; shift 2
    curl -s -m 5 -o "$WORK/post.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "$body" "$@" "$B/conversations/$id/runs" >"$WORK/post.code" || true
    printf '%s|%s' "$(cat "$WORK/post.code")" "$(head -1 "$WORK/post.out")"
}
MSG='{"message":"line one\nline two","agent_id":"a1","agent_type":"rule_37"}'
r=$(post conv-42-2 "$MSG" -H "Authorization: Bearer $GOOD")
expect_eq "POST runs with a bearer token: 202" 202 "${r%%|*}"
run_id=$(jq -r .run_id <<<"${r#*|}")
expect_eq "202 answers the run's id, the run request is recorded with its line break" "line one
line two|rule_37" "$(q "SELECT message || '|' || agent_type FROM aegis.run_requests WHERE event_id = ${run_id:-0}")"
before=$(runs)
expect_eq "POST with the cookie alone (no X-Aegis-Request): 403" 403 \
    "$(post conv-42-3 "$MSG" -H "Cookie: aegis_token=$GOOD" | cut -d'|' -f1)"
expect_eq "POST without the run claim: 403" 403 "$(post conv-42-3 "$MSG" -H "Authorization: Bearer $NORUN" | cut -d'|' -f1)"
expect_eq "POST for a conversation the token does not cover: 403" 403 \
    "$(post conv-99 "$MSG" -H "Authorization: Bearer $GOOD" | cut -d'|' -f1)"
expect_eq "POST without a token: 401" 401 "$(post conv-42-3 "$MSG" -H 'X-Aegis-Request: 1' | cut -d'|' -f1)"
expect_eq "POST with bad JSON: 400" 400 "$(post conv-42-3 '{"message":' -H "Authorization: Bearer $GOOD" | cut -d'|' -f1)"
expect_eq "POST without message: 400" 400 "$(post conv-42-3 '{"agent_type":"rule_37"}' -H "Authorization: Bearer $GOOD" | cut -d'|' -f1)"
expect_eq "POST with an unknown field: 400" 400 \
    "$(post conv-42-3 '{"message":"x","agent_type":"rule_37","prio":1}' -H "Authorization: Bearer $GOOD" | cut -d'|' -f1)"
expect_eq "POST with a bad agent_id: 400" 400 \
    "$(post conv-42-3 '{"message":"x","agent_type":"rule_37","agent_id":"a b"}' -H "Authorization: Bearer $GOOD" | cut -d'|' -f1)"
expect_eq "POST as a form: 415" 415 "$(curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST \
    -H "Authorization: Bearer $GOOD" --data 'message=x' "$B/conversations/conv-42-3/runs")"
expect_eq "refused POSTs recorded nothing" "$before" "$(runs)"
expect_eq "POST with the cookie and X-Aegis-Request: 1: 202" 202 \
    "$(post conv-42-3 "$MSG" -H "Cookie: aegis_token=$GOOD" -H 'X-Aegis-Request: 1' | cut -d'|' -f1)"
RUNALL=$(mint --subscribe 'conversation:*' --run '*')
if [ "$(q "SELECT to_regproc('aegis.configure_agent') IS NOT NULL")" = t ]; then
    expect_eq "POST for an agent type that is not configured: 400, the value not echoed" \
        "400|bad request: agent_type is not configured for runs" \
        "$(post conv-42-6 '{"message":"x","agent_type":"ghost_agent"}' -H "Authorization: Bearer $RUNALL")"
    expect_eq "POST another message while the conversation's run is open: 409" 409 \
        "$(post conv-42-2 '{"message":"another","agent_type":"rule_37"}' -H "Authorization: Bearer $RUNALL" | cut -d'|' -f1)"
    expect_eq "POST the same message while its run is open: 202, the same run" "202|{\"run_id\": $run_id}" \
        "$(post conv-42-2 "$MSG" -H "Authorization: Bearer $RUNALL")"
fi
expect_eq "GET on /runs: 405" 405 "$(code "$B/conversations/conv-42-3/runs" -H "Authorization: Bearer $GOOD")"

# ---- CSRF, rebinding, cut messages ----
before=$(runs)
expect_eq "GET ?message= with Sec-Fetch-Site: cross-site (an <img>): 403" 403 \
    "$(code "$B/conversations/conv-42-4/stream?message=x&agent_type=rule_37" -H "Cookie: aegis_token=$GOOD" -H 'Sec-Fetch-Site: cross-site')"
expect_eq "POST from a foreign Origin: 403" 403 \
    "$(post conv-42-4 "$MSG" -H "Cookie: aegis_token=$GOOD" -H 'X-Aegis-Request: 1' -H 'Origin: http://evil.test' | cut -d'|' -f1)"
expect_eq "POST with Sec-Fetch-Site: same-site: 403" 403 \
    "$(post conv-42-4 "$MSG" -H "Authorization: Bearer $GOOD" -H 'Sec-Fetch-Site: same-site' | cut -d'|' -f1)"
expect_eq "GET ?message= with %0A in the message: 400" 400 \
    "$(code "$B/conversations/conv-42-4/stream?message=line1%0Aline2&agent_type=rule_37" -H "Authorization: Bearer $GOOD")"
expect_eq "GET ?message= with %0D in the message: 400" 400 \
    "$(code "$B/conversations/conv-42-4/stream?message=a%0Db&agent_type=rule_37" -H "Authorization: Bearer $GOOD")"
expect_eq "cross-site and cut run requests recorded nothing" "$before" "$(runs)"
expect_eq "POST from the bridge's own origin: 202" 202 \
    "$(post conv-42-4 "$MSG" -H "Cookie: aegis_token=$GOOD" -H 'X-Aegis-Request: 1' -H "Origin: $B" -H 'Sec-Fetch-Site: same-origin' | cut -d'|' -f1)"
expect_eq "POST from a listed --cors-origin: 202" 202 \
    "$(post conv-42-5 "$MSG" -H "Authorization: Bearer $GOOD" -H 'Origin: http://allowed.test' -H 'Sec-Fetch-Site: cross-site' | cut -d'|' -f1)"
expect_eq "Host: attacker.example: 421" 421 "$(code "$WS" -H 'Host: attacker.example' -H "Authorization: Bearer $GOOD")"
expect_eq "Host: attacker.example on the dashboard: 421" 421 "$(code "$B/" -H 'Host: attacker.example')"
expect_eq "Host: localhost:PORT: 200" 200 "$(code "$WS" -H "Host: localhost:$PORT" -H "Authorization: Bearer $GOOD")"

# ---- static files and headers ----
expect_eq "symlink to a file outside --static-dir: 404" 404 "$(code "$B/static/conf.txt")"
expect_eq "symlinked directory outside --static-dir: 404" 404 "$(code "$B/static/out/postgresql.conf")"
h=$(curl -s -D - -o /dev/null -m 2 "$B/")
check "the dashboard page has a Content-Security-Policy without inline script" \
    grep -qi "^content-security-policy: default-src 'self'.*script-src 'self'" <<<"$h"
check "the dashboard page has X-Content-Type-Options: nosniff" grep -qi '^x-content-type-options: nosniff' <<<"$h"
check "a script file has nosniff" grep -qi '^x-content-type-options: nosniff' \
    <<<"$(curl -s -D - -o /dev/null -m 2 "$B/static/dashboard.js")"
check "a 401 has nosniff" grep -qi '^x-content-type-options: nosniff' <<<"$(curl -s -D - -o /dev/null -m 2 "$WS")"
check "a stream has nosniff" grep -qi '^x-content-type-options: nosniff' \
    <<<"$(curl -s -D - -o /dev/null -m 2 "$WS" -H "Authorization: Bearer $GOOD" || true)"
h=$(curl -s -D - -o /dev/null -m 2 "$WS" -H 'Origin: http://allowed.test' -H "Cookie: aegis_token=$GOOD" || true)
check "CORS: a listed origin is echoed (never *)" grep -qi '^access-control-allow-origin: http://allowed.test' <<<"$h"
check "CORS: with credentials" grep -qi '^access-control-allow-credentials: true' <<<"$h"
h=$(curl -s -D - -o /dev/null -m 2 -X OPTIONS "$B/conversations/c/runs" -H 'Origin: http://allowed.test' \
    -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: content-type, x-aegis-request')
check "CORS preflight for POST runs allows POST and the headers" \
    bash -c "grep -qi '^access-control-allow-methods:.*POST' <<<'$h' && grep -qi '^access-control-allow-headers:.*x-aegis-request' <<<'$h' && grep -qi '^access-control-allow-credentials: true' <<<'$h'"

# ---- a stream ends at exp; resumed with a new token, every event exactly once ----
for i in 1 2 3; do q "SELECT aegis.publish_agent_status('chk-exp', 'running', 'before $i')" >/dev/null; done
SHORT=$(mint --subscribe workspace:chk-exp --ttl 3)
curl -s -N -m 30 -H "Authorization: Bearer $SHORT" "$B/workspaces/chk-exp/stream" >"$WORK/exp1.txt" &
CURL_PID=$!
wait_for 10 grep -q 'before 3' "$WORK/exp1.txt"
for i in 1 2 3; do q "SELECT aegis.publish_agent_status('chk-exp', 'running', 'during $i')" >/dev/null; done
wait "$CURL_PID"; rc=$?
expect_eq "the stream was closed by the bridge at exp (curl did not reach its 30 s limit)" ok \
    "$([ "$rc" != 28 ] && echo ok || echo "curl exit $rc")"
check "the stream got events before it closed" grep -q 'during 3' "$WORK/exp1.txt"
expect_eq "reconnecting after exp with the old token: still accepted within the 30 s leeway, closed again" 200 \
    "$(code "$B/workspaces/chk-exp/stream" -H "Authorization: Bearer $SHORT")"
for i in 1 2 3; do q "SELECT aegis.publish_agent_status('chk-exp', 'running', 'after $i')" >/dev/null; done
last=$(grep '^id: ' "$WORK/exp1.txt" | tail -1 | cut -d' ' -f2)
FRESH=$(mint --subscribe workspace:chk-exp)
curl -s -N -m 3 -H "Authorization: Bearer $FRESH" -H "Last-Event-ID: $last" "$B/workspaces/chk-exp/stream" >"$WORK/exp2.txt" || true
got=$(cat "$WORK/exp1.txt" "$WORK/exp2.txt" | awk '/^id: /{print $2}' | sort -n | tr '\n' ' ')
want=$(q "SELECT string_agg(id::text, ' ' ORDER BY id) || ' ' FROM aegis.events WHERE stream_id = 'chk-exp'")
expect_eq "closed at exp and resumed with a new token: every event exactly once" "$want" "$got"

# ---- the log never holds a token ----
stop_bridge
leaks=0
while read -r t; do
    [ -n "$t" ] && grep -qF -- "$t" "$LOG" && leaks=$((leaks + 1))
done <"$TOKENS"
expect_eq "no token used in this suite appears in the log ($(wc -l <"$TOKENS") tokens, debug level)" 0 "$leaks"
check "the log names refusals without the token" grep -q 'msg="token refused" reason="bad signature" source=bearer' "$LOG"
check "the query string is logged redacted" grep -q 'access_token=\[redacted\]' "$LOG"

# ---- the SQL policy function ----
q "CREATE SCHEMA app;
   CREATE FUNCTION app.policy(claims jsonb, stream_kind text, stream_id text) RETURNS boolean
   LANGUAGE sql AS \$\$ SELECT CASE stream_id WHEN 'p-allow' THEN claims->>'sub' = 'user-17'
       WHEN 'p-deny' THEN false WHEN 'p-error' THEN (1/0)::boolean END \$\$;
   CREATE FUNCTION app.wrong_args(claims jsonb, stream_kind text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
   CREATE FUNCTION app.wrong_type(claims jsonb, stream_kind text, stream_id text) RETURNS int LANGUAGE sql AS 'SELECT 1'" >/dev/null
start_fail() {   # start_fail FLAGS...: the exit status and the stderr of a start that must fail
    ASAN_OPTIONS=detect_leaks=1 timeout 30 "$BIN" --listen "127.0.0.1:$PORT" --no-drain "$@" >"$WORK/fail.out" 2>&1
    echo "$?"
}
expect_eq "--auth-sql-function naming a missing function: exit 2" 2 \
    "$(start_fail --auth-jwt-key "$SECRET" --auth-sql-function app.missing)"
check "… and the message names it" grep -q 'app.missing(claims jsonb, stream_kind text, stream_id text)' "$WORK/fail.out"
expect_eq "--auth-sql-function with two arguments: exit 2" 2 \
    "$(start_fail --auth-jwt-key "$SECRET" --auth-sql-function app.wrong_args)"
expect_eq "--auth-sql-function returning int: exit 2" 2 \
    "$(start_fail --auth-jwt-key "$SECRET" --auth-sql-function app.wrong_type)"
check "… and the message says it must return boolean" grep -q 'must be a function returning boolean' "$WORK/fail.out"
expect_eq "--auth-sql-function without a key: exit 2" 2 "$(start_fail --auth-sql-function app.policy)"
check "bridge starts with --auth-sql-function app.policy" start_bridge --auth-sql-function app.policy
ALL=$(mint --subscribe 'workspace:*' --sub user-17)
expect_eq "policy true: 200" 200 "$(code "$B/workspaces/p-allow/stream" -H "Authorization: Bearer $ALL")"
expect_eq "policy sees the claims (sub user-18): 403" 403 \
    "$(code "$B/workspaces/p-allow/stream" -H "Authorization: Bearer $(mint --subscribe 'workspace:*' --sub user-18)")"
expect_eq "policy false: 403" 403 "$(code "$B/workspaces/p-deny/stream" -H "Authorization: Bearer $ALL")"
expect_eq "policy error: 403" 403 "$(code "$B/workspaces/p-error/stream" -H "Authorization: Bearer $ALL")"
expect_eq "policy NULL: 403" 403 "$(code "$B/workspaces/p-null/stream" -H "Authorization: Bearer $ALL")"
expect_eq "policy runs after the claim check (token for chk-42 only on p-allow): 403" 403 \
    "$(code "$B/workspaces/p-allow/stream" -H "Authorization: Bearer $GOOD")"
expect_eq "bridge still serves after policy errors" 200 "$(code "$B/healthz")"
stop_bridge
check "a policy error is logged as a denial" grep -q 'policy function failed: denied.*division by zero' "$LOG"
check "a policy NULL is logged as a denial" grep -q 'policy function returned NULL: denied' "$LOG"

# ---- deny by default off loopback (started and stopped at once; nothing talks to it) ----
P2=$(free_port)
expect_eq "0.0.0.0 without --auth-jwt-key: refuses to start, exit 2" 2 \
    "$(ASAN_OPTIONS=detect_leaks=1 timeout 30 "$BIN" --listen "0.0.0.0:$P2" --no-drain >"$WORK/deny.out" 2>&1; echo $?)"
check "… naming --auth-jwt-key and --auth none" bash -c "grep -q -- '--auth-jwt-key' '$WORK/deny.out' && grep -q -- '--auth none' '$WORK/deny.out'"
expect_eq "0.0.0.0 with a key but without --allowed-hosts: exit 2" 2 \
    "$(ASAN_OPTIONS=detect_leaks=1 timeout 30 "$BIN" --listen "0.0.0.0:$P2" --no-drain --auth-jwt-key "$SECRET" >"$WORK/deny2.out" 2>&1; echo $?)"
check "… naming --allowed-hosts" grep -q -- '--allowed-hosts' "$WORK/deny2.out"
expect_eq "--auth none with a key: exit 2" 2 \
    "$(ASAN_OPTIONS=detect_leaks=1 timeout 30 "$BIN" --listen "127.0.0.1:$P2" --no-drain --auth none --auth-jwt-key "$SECRET" >/dev/null 2>&1; echo $?)"
expect_eq "a short secret: exit 2" 2 \
    "$(head -c 16 /dev/urandom >"$WORK/short"; ASAN_OPTIONS=detect_leaks=1 timeout 30 "$BIN" --listen "127.0.0.1:$P2" --no-drain --auth-jwt-key "$WORK/short" >"$WORK/short.out" 2>&1; echo $?)"
check "… saying at least 32 bytes" grep -q 'at least 32' "$WORK/short.out"
ASAN_OPTIONS=detect_leaks=1 "$BIN" --listen "0.0.0.0:$P2" --no-drain --auth none >"$WORK/none.log" 2>&1 &
NONE_PID=$!
wait_for 20 grep -q 'authorization is off (--auth none)' "$WORK/none.log"
check "--auth none on 0.0.0.0 starts and logs a warning" grep -q 'level=warn.*authorization is off (--auth none)' "$WORK/none.log"
kill_pid "$NONE_PID"

# ---- the token command ----
expect_eq "aegis-bridge token with a bad flag: exit 2" 2 "$("$BIN" token --key "$SECRET" --bogus x >/dev/null 2>&1; echo $?)"
expect_eq "aegis-bridge token with a bad pattern: exit 2" 2 "$("$BIN" token --key "$SECRET" --subscribe 'stream:x' >/dev/null 2>&1; echo $?)"
expect_eq "aegis-bridge token without --key: exit 2" 2 "$("$BIN" token --subscribe workspace:a >/dev/null 2>&1; echo $?)"

check "the bridge's log has no sanitizer report" bash -c "! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' '$LOG' '$WORK/none.log'"
finish
