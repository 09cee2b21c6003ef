/*
 * test/browser/h2-resume.test.js: the dashboard (web/) over a DIRECT HTTP/2
 * connection to the bridge (TLS, no proxy), run by test/suites/69-tls.sh.
 * libwebsockets 4.1.6 drops the Last-Event-ID and X-Aegis-Request headers on
 * an HTTP/2 stream, so EventSource's own reconnect cannot resume there and a
 * cookie run request cannot carry X-Aegis-Request: web/streams.js reopens
 * its streams with ?last_event_id=, and the bridge takes the Origin header
 * as the run request's CSRF signal over HTTP/2 (docs/auth.md).
 * Headless chromium (ignoring the test CA) opens the dashboard with a JWT
 * (?token=, moved into the cookie by session.js) on a workspace and a
 * conversation; events are published with the bridge up, while it is killed
 * (SIGKILL) and after it is restarted on the same port. Each stream must
 * end with every event exactly once, in store order (no gap, no duplicate),
 * and the conversation shown as ended after done. Then the page POSTs a run
 * request the way the dashboard does (cookie, no bearer) over HTTP/2: 202.
 * Last, a second tab on the same HTTP/2 connection opens 10 more streams and
 * closes one (stream.close()): lws 4.1.6 reports no RST_STREAM, so
 * streams.js's beacon (POST streams/<key>/close) must free it on the bridge
 * (/metrics: h2 streams one fewer, the connection still open) while the
 * others keep streaming.
 * Environment: AEGIS_BRIDGE_BIN, AEGIS_STATIC (web/ copy), AEGIS_PORT,
 * AEGIS_TLS_CERT, AEGIS_TLS_KEY, AEGIS_JWT_KEY (secret file), AEGIS_OUT, PG*.
 */
"use strict";

const path = require("path");
const fs = require("fs");
const util = require("util");
const https = require("https");
const { execFileSync } = require("child_process");
const T = require("./lib");

const OUT = process.env.AEGIS_OUT || "/tmp";
const BIN = process.env.AEGIS_BRIDGE_BIN;
const BASE = "https://127.0.0.1:" + process.env.AEGIS_PORT;
const WS = "ws-h2r-" + process.pid;
const CONV = "conv-h2r-" + process.pid;
const AUTH = ["--auth-jwt-key", process.env.AEGIS_JWT_KEY, "--auth-jwt-audience", "aegis-test",
  "--auth-jwt-issuer", "test-idp"];

function token(extra) {
  return execFileSync(BIN, ["token", "--key", process.env.AEGIS_JWT_KEY, "--aud", "aegis-test", "--iss", "test-idp",
    "--subscribe", "workspace:" + WS, "--subscribe", "workspace:" + WS + "-2",
    "--subscribe", "conversation:conv-h2r-*", "--run", "rule_37", "--sub", "h2-page"].concat(extra || []),
  { encoding: "utf8", env: Object.assign({}, process.env, { ASAN_OPTIONS: "detect_leaks=0" }) }).trim();
}

/* metric(name): a sample of the bridge's /metrics (read over HTTP/1.1, so
 * it adds no HTTP/2 connection), as a number; NaN when absent */
function metric(name, tok) {
  return new Promise((resolve) => {
    const req = https.get(BASE + "/metrics", { rejectUnauthorized: false, headers: { Authorization: "Bearer " + tok } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => { body += d; });
        res.on("end", () => {
          const line = body.split("\n").find((l) => l.startsWith(name + " "));
          resolve(line ? Number(line.slice(name.length + 1)) : NaN);
        });
      });
    req.on("error", () => resolve(NaN));
  });
}
const H2_STREAMS = 'aegis_bridge_sse_streams{protocol="h2",tls="yes"}';
const H2_CONNS = 'aegis_bridge_connections{protocol="h2",tls="yes"}';

function publish(n, phase) {
  for (let i = 1; i <= n; i++) {
    T.psql("SELECT aegis.publish_agent_status(" + T.sqlLiteral(WS) + ", 'running', " +
      T.sqlLiteral(phase + " " + i) + ")");
    T.psql("SELECT aegis.publish_node_end(" + T.sqlLiteral(CONV) + ", " + T.sqlLiteral("step_" + phase + "_" + i) +
      ", 'running', " + i + ")");
  }
}

function storeIds(kind, id) {
  const out = T.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.events WHERE stream_kind = " +
    T.sqlLiteral(kind) + " AND stream_id = " + T.sqlLiteral(id));
  return out ? out.split(",") : [];
}

function logIds(page, kind) {
  return page.evaluate((k) => window.aegisStreams.log.filter((e) => e.stream.startsWith(k + " ")).map((e) => e.id), kind);
}

function badge(page, kind) {
  return page.evaluate((k) => {
    const b = Array.prototype.find.call(document.querySelectorAll(".conn"), (x) => x.dataset.stream.startsWith(k + " "));
    return b ? b.dataset.state : null;
  }, kind);
}

async function waitCount(page, n, what) {
  return T.waitFor(what, async () => {
    const w = await logIds(page, "workspace"), c = await logIds(page, "conversation");
    return w.length >= n.ws && c.length >= n.conv;
  }, 60000);
}

/* a second tab of the same context (the same HTTP/2 connection): 1 workspace
 * + 9 conversations; one conversation closed by the page is freed at once */
async function closeOne(ctx) {
  const mtok = token(["--metrics"]);
  /* the first tab holds its workspace stream; its conversation ended (done) */
  const base = 1;
  await T.waitFor("the first tab's streams to settle", async () => (await metric(H2_STREAMS, mtok)) === base, 15000)
    .catch(async (e) => T.diag(e.message + ": " + (await metric(H2_STREAMS, mtok))));
  const convs = Array.from({ length: 9 }, (_, i) => CONV + "-c" + (i + 1));
  const tab = await ctx.newPage();
  tab.on("pageerror", (e) => T.diag("second tab error: " + e.message));
  await tab.goto(BASE + "/?checklist=" + WS + "-2&conversations=" + convs.join(","));
  const live = await T.waitFor("10 more streams live on the bridge", async () =>
    (await tab.evaluate(() => window.aegisStreams.streams.filter((s) => s.state === "live").length)) === 10 &&
    (await metric(H2_STREAMS, mtok)) === base + 10, 30000).catch(async (e) => {
    T.notOk("second tab: 10 more streams live", e.message + ": " + (await metric(H2_STREAMS, mtok)) + " h2 streams");
    return false;
  });
  if (!live) return;
  T.ok("second tab: 10 more streams live (" + (base + 10) + " HTTP/2 streams on the bridge)");
  const conns = await metric(H2_CONNS, mtok);
  const closed = await tab.evaluate((label) => {
    const s = window.aegisStreams.streams.find((x) => x.label === label);
    s.close();
    return s.state;
  }, "conversation " + convs[4]);
  const freed = await T.waitFor("the closed stream freed on the bridge", async () =>
    (await metric(H2_STREAMS, mtok)) === base + 9, 10000).then(() => true, () => false);
  T.check("closing one EventSource of the tab frees its stream on the bridge (h2 streams " + (base + 10) + " -> " + (base + 9) + ")",
    freed && closed === "closed", "now " + (await metric(H2_STREAMS, mtok)) + ", state " + closed);
  T.check("... on the same HTTP/2 connection, still open", (await metric(H2_CONNS, mtok)) === conns && conns >= 1,
    "h2 connections " + conns + " -> " + (await metric(H2_CONNS, mtok)));
  T.psql("SELECT aegis.publish_node_end(" + T.sqlLiteral(convs[5]) + ", 'after_close', 'running', 1)");
  const after = await T.waitFor("an event on a sibling stream", () => tab.evaluate((l) =>
    window.aegisStreams.log.some((e) => e.stream === l), "conversation " + convs[5]), 20000).then(() => true, () => false);
  T.check("... and a sibling stream of the tab keeps streaming", after);
  await tab.close();
}

async function run() {
  const bridge = new T.Bridge(BIN, ["--listen", "127.0.0.1:" + process.env.AEGIS_PORT, "--no-drain",
    "--heartbeat-seconds", "1", "--retry-ms", "500", "--static-dir", process.env.AEGIS_STATIC,
    "--tls-cert", process.env.AEGIS_TLS_CERT, "--tls-key", process.env.AEGIS_TLS_KEY].concat(AUTH),
  path.join(OUT, "bridge-h2resume.log"), path.join(OUT, "bridge-h2resume.pids"));
  await bridge.start(BASE);
  const browser = await T.launchBrowser();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    page.on("pageerror", (e) => T.diag("dashboard error: " + e.message));
    await page.goto(BASE + "/?checklist=" + WS + "&conversations=" + CONV + "&token=" + token());
    const proto = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
    T.check("the dashboard came over a direct HTTP/2 connection (h2)", proto === "h2", "nextHopProtocol " + proto);
    await T.waitFor("both streams live", async () =>
      (await badge(page, "workspace")) === "live" && (await badge(page, "conversation")) === "live", 20000);
    T.ok("dashboard over HTTP/2: both streams live (cookie authorization)");

    publish(3, "before");
    await waitCount(page, { ws: 3, conv: 3 }, "the events published before the restart");
    T.ok("live events arrive before the restart");

    await bridge.stop("SIGKILL");
    publish(2, "down");                         /* committed while the bridge is dead */
    await T.waitFor("the workspace badge to say reconnecting", async () =>
      (await badge(page, "workspace")) === "reconnecting", 20000)
      .then(() => T.ok("dashboard shows 'reconnecting' while the bridge is down"),
        (e) => T.notOk("dashboard shows 'reconnecting' while the bridge is down", e.message));
    await bridge.start(BASE);
    await T.waitFor("both streams live again", async () =>
      (await badge(page, "workspace")) === "live" && (await badge(page, "conversation")) === "live", 60000)
      .then(() => T.ok("dashboard reopened both streams by itself after the restart"),
        (e) => T.notOk("dashboard reopened both streams by itself after the restart", e.message));
    publish(2, "after");
    T.psql("SELECT aegis.publish_done(" + T.sqlLiteral(CONV) + ", 'exec-h2', 'completed', 7, 0.01, ARRAY['x'])");
    await waitCount(page, { ws: 7, conv: 8 }, "every event").catch((e) => T.diag(e.message));
    await T.sleep(1500);                        /* a duplicate replay would have arrived by now */
    for (const [kind, id] of [["workspace", WS], ["conversation", CONV]]) {
      const got = await logIds(page, kind), want = storeIds(kind, id);
      T.check(kind + " over HTTP/2 across a bridge restart: every event exactly once, in store order (no gap, no duplicate)",
        util.isDeepStrictEqual(got, want), "page " + got.join(",") + " store " + want.join(","));
    }
    await T.waitFor("the conversation badge to say ended", async () => (await badge(page, "conversation")) === "ended", 20000)
      .then(() => T.ok("conversation shown as ended after done"),
        (e) => T.notOk("conversation shown as ended after done", e.message));
    /* streams that ended (killed with the bridge, the conversation after
     * done); attempts made while the bridge was down got no response */
    const streams = await page.evaluate(() => performance.getEntriesByType("resource")
      .filter((r) => r.name.includes("/stream") && r.responseStart > 0).map((r) => r.nextHopProtocol));
    T.check("every stream response of the page came over h2", streams.length >= 3 && streams.every((p) => p === "h2"),
      JSON.stringify(streams));

    /* the run request as dashboard.js's startRun sends it: cookie, no bearer */
    const before = T.psql("SELECT count(*) FROM aegis.run_requests");
    const post = await page.evaluate(async (conv) => {
      const r = await fetch("conversations/" + conv + "/runs", {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "Content-Type": "application/json", "X-Aegis-Request": "1" },
        body: JSON.stringify({ message: "asked over h2", agent_type: "rule_37" }) });
      const body = (await r.text()).trim();
      const e = performance.getEntriesByType("resource").filter((x) => x.name.endsWith("/runs")).pop();
      return { status: r.status, body: body, proto: e ? e.nextHopProtocol : null };
    }, CONV + "-run");
    T.check("POST run over direct HTTP/2 with the cookie (the dashboard's request): 202", post.status === 202 &&
      post.proto === "h2", JSON.stringify(post));
    T.check("... and the run request is recorded", T.psql("SELECT count(*) FROM aegis.run_requests") === String(Number(before) + 1) &&
      T.psql("SELECT message FROM aegis.run_requests WHERE conversation_id = " + T.sqlLiteral(CONV + "-run")) === "asked over h2");
    await page.screenshot({ path: path.join(OUT, "h2-resume.png"), fullPage: true });
    await closeOne(ctx);
  } finally {
    await browser.close();
    await bridge.stop("SIGTERM");
  }
}

run().catch((e) => { T.notOk("h2 resume scenario ran to the end", e.stack || String(e)); })
  .finally(() => T.finish("h2-resume"));
