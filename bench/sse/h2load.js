#!/usr/bin/env node
/*
 * bench/sse/h2load.js: the client of bench/sse/h2.sh, on node's http,
 * https and http2 modules. One process, one protocol per run:
 *   h1     plain HTTP/1.1, a connection per stream
 *   h1tls  HTTP/1.1 over TLS, a connection per stream
 *   h2     HTTP/2 over TLS, --per-conn streams per connection
 *
 *   idle BASE --proto P --streams N [--per-conn K] --ready FILE --done FILE [--timeout S]
 *       opens N idle streams (/workspaces/<prefix>-i/stream), writes FILE
 *       once all have their headers, holds them until DONE exists.
 *   lat BASE --proto P --subs S --stream NAME --events E --ready FILE [--per-conn K] [--timeout S]
 *       S subscribers of one stream; each event's message is the epoch
 *       seconds (clock_timestamp()) at which it was published; latency =
 *       receive time - that. Prints JSON: n, p50, p90, p99, max (ms).
 * Every run ends by --timeout (default 120 s).
 */
"use strict";

const http = require("http");
const https = require("https");
const http2 = require("http2");
const fs = require("fs");
const { performance } = require("perf_hooks");

function args(argv) {
  const o = { mode: argv[0], base: argv[1], perConn: 100, timeout: 120, prefix: "idle" };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    o[k] = /^\d+$/.test(argv[i + 1]) ? Number(argv[i + 1]) : argv[i + 1];
  }
  return o;
}

function nowMs() { return performance.timeOrigin + performance.now(); }

/* opens one stream; onData(chunk) per chunk; returns a promise of its headers */
function openStream(o, sessions, i, path, onData) {
  return new Promise((resolve, reject) => {
    if (o.proto === "h2") {
      const s = sessions[Math.floor(i / o.perConn)];
      const req = s.request({ ":path": path, accept: "text/event-stream" });
      req.setEncoding("utf8");
      req.on("response", (h) => resolve(h[":status"]));
      req.on("data", onData);
      req.on("error", reject);
      return;
    }
    const mod = o.proto === "h1tls" ? https : http;
    const req = mod.get(o.base + path, { agent: false, rejectUnauthorized: false,
      headers: { accept: "text/event-stream" } }, (res) => {
      res.setEncoding("utf8");
      res.on("data", onData);
      resolve(res.statusCode);
    });
    req.on("error", reject);
  });
}

function connect(o, n) {
  const sessions = [];
  if (o.proto !== "h2") return sessions;
  for (let k = 0; k < Math.ceil(n / o.perConn); k++) {
    const s = http2.connect(o.base, { rejectUnauthorized: false });
    s.on("error", (e) => { console.error("session error " + e); process.exit(1); });
    sessions.push(s);
  }
  return sessions;
}

async function idle(o) {
  const sessions = connect(o, o.streams);
  const opened = [];
  for (let i = 0; i < o.streams; i++) opened.push(openStream(o, sessions, i, "/workspaces/" + o.prefix + "-" + i + "/stream", () => {}));
  const st = await Promise.all(opened);
  if (!st.every((c) => c === 200)) throw new Error("not every stream got 200: " + st.filter((c) => c !== 200).slice(0, 3));
  fs.writeFileSync(o.ready, "ready\n");
  await new Promise((r) => { const t = setInterval(() => { if (fs.existsSync(o.done)) { clearInterval(t); r(); } }, 50); });
  process.exit(0);
}

function pct(sorted, p) { return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]; }

async function lat(o) {
  const sessions = connect(o, o.subs);
  const lats = [];
  const counts = new Array(o.subs).fill(0);
  const opened = [];
  for (let i = 0; i < o.subs; i++) {
    let buf = "";
    opened.push(openStream(o, sessions, i, "/workspaces/" + o.stream + "/stream", (d) => {
      const t = nowMs();
      buf += d;
      let k;
      while ((k = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, k);
        buf = buf.slice(k + 2);
        const m = /^data: (.*)$/m.exec(block);
        if (!m) continue;
        const sent = Number(JSON.parse(m[1]).message) * 1000;
        lats.push(t - sent);
        counts[i] += 1;
      }
    }));
  }
  await Promise.all(opened);
  fs.writeFileSync(o.ready, "ready\n");
  await new Promise((r) => { const t = setInterval(() => { if (counts.every((c) => c >= o.events)) { clearInterval(t); r(); } }, 20); });
  lats.sort((a, b) => a - b);
  const r3 = (x) => Math.round(x * 1000) / 1000;
  process.stdout.write(JSON.stringify({ proto: o.proto, n: lats.length, p50: r3(pct(lats, 0.5)), p90: r3(pct(lats, 0.9)),
    p99: r3(pct(lats, 0.99)), max: r3(lats[lats.length - 1]) }) + "\n");
  process.exit(0);
}

const o = args(process.argv.slice(2));
setTimeout(() => { console.error("h2load: timed out"); process.exit(1); }, o.timeout * 1000);
(o.mode === "idle" ? idle(o) : lat(o)).catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
