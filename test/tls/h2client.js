#!/usr/bin/env node
/*
 * test/tls/h2client.js: an HTTP/2 SSE client for the TLS tests, on node's
 * own http2 module (nghttp2). Every stream of one run shares one connection.
 * Prints one JSON object on stdout. Bounded: every mode stops by --timeout.
 *
 *   streams BASE --paths P1,P2,... --events N [--ready FILE] [--timeout S]
 *       opens every path as a stream of one connection; writes FILE once all
 *       have their response headers; ends when every 200 stream has N events
 *       (or ended). Reports status, content-type and event ids per path.
 *   stall BASE --stalled P --live P --live-events N --ready FILE --go FILE
 *         --more-events M [--timeout S]
 *       opens both on one connection; never reads the stalled stream after
 *       its headers (stream.pause(): its window is not given back), reads the
 *       live one. Writes FILE once both have headers, and FILE.live once the
 *       live stream has N events (noting how many bytes the stalled stream
 *       had taken and whether it was open then). After GO exists, ends when
 *       the live stream has N + M events; reports it all.
 *   reset BASE --reset P --live P --ready FILE --go FILE --live-events N [--timeout S]
 *       opens both; once FILE has been written and the test created GO,
 *       cancels the first stream (RST_STREAM CANCEL; writes GO.reset once
 *       it is sent) and keeps reading the live one until it has N events in
 *       total.
 * Options: --ca FILE trusts that CA (default: no verification),
 *          -H 'name: value' adds a request header to every stream.
 */
"use strict";

const http2 = require("http2");
const fs = require("fs");

function parseArgs(argv) {
  const o = { mode: argv[0], base: argv[1], headers: {}, timeout: 30 };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    switch (a) {
      case "--paths": o.paths = v.split(","); i++; break;
      case "--events": o.events = Number(v); i++; break;
      case "--ready": o.ready = v; i++; break;
      case "--go": o.go = v; i++; break;
      case "--timeout": o.timeout = Number(v); i++; break;
      case "--stalled": o.stalled = v; i++; break;
      case "--reset": o.reset = v; i++; break;
      case "--live": o.live = v; i++; break;
      case "--live-events": o.liveEvents = Number(v); i++; break;
      case "--more-events": o.moreEvents = Number(v); i++; break;
      case "--ca": o.ca = fs.readFileSync(v); i++; break;
      case "-H": { const k = v.indexOf(":"); o.headers[v.slice(0, k).trim().toLowerCase()] = v.slice(k + 1).trim(); i++; break; }
      default: throw new Error("unknown argument " + a);
    }
  }
  return o;
}

/* a stream's record: status, headers, ids of complete events, bytes */
function open(session, path, headers) {
  const rec = { path, status: 0, contentType: null, headers: null, ids: [], bytes: 0, ended: false,
    closed: false, rstCode: null };
  const req = session.request(Object.assign({ ":path": path, accept: "text/event-stream" }, headers));
  /* not part of the report */
  Object.defineProperty(rec, "stream", { value: req, enumerable: false });
  Object.defineProperty(rec, "buf", { value: "", enumerable: false, writable: true });
  req.setEncoding("utf8");
  req.on("response", (h) => {
    rec.status = h[":status"];
    rec.contentType = h["content-type"] || null;
    rec.headers = Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith(":")));
  });
  req.on("data", (d) => {
    rec.bytes += Buffer.byteLength(d);
    rec.buf += d;
    let k;
    while ((k = rec.buf.indexOf("\n\n")) >= 0) {
      const block = rec.buf.slice(0, k);
      rec.buf = rec.buf.slice(k + 2);
      const m = /^id: (.*)$/m.exec(block);
      if (m && /^data: /m.test(block)) rec.ids.push(m[1]);
    }
  });
  req.on("end", () => { rec.ended = true; });
  req.on("close", () => { rec.closed = true; rec.rstCode = req.rstCode; });
  req.on("error", () => {});
  return rec;
}

function report(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function poll(cond, done, deadline, onTimeout) {
  const t = setInterval(() => {
    if (cond()) { clearInterval(t); done(); } else if (Date.now() > deadline) { clearInterval(t); onTimeout(); }
  }, 20);
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const deadline = Date.now() + o.timeout * 1000;
  const session = http2.connect(o.base, o.ca ? { ca: o.ca, servername: "localhost" } : { rejectUnauthorized: false });
  let alpn = null;
  session.on("connect", () => { alpn = session.alpnProtocol; });
  session.on("error", (e) => { report({ error: String(e) }); process.exit(1); });
  const finish = (obj, code) => { report(Object.assign({ alpn }, obj)); session.destroy(); process.exit(code); };

  if (o.mode === "streams") {
    const recs = o.paths.map((p) => open(session, p, o.headers));
    if (o.ready) poll(() => recs.every((r) => r.status), () => fs.writeFileSync(o.ready, "ready\n"), deadline, () => {});
    const all = () => Object.fromEntries(recs.map((r) => [r.path, r]));
    poll(() => recs.every((r) => r.ended || r.closed || (r.status === 200 && r.ids.length >= o.events)),
      () => finish({ streams: all(), timedOut: false }, 0), deadline, () => finish({ streams: all(), timedOut: true }, 1));
  } else if (o.mode === "stall") {
    const stalled = open(session, o.stalled, o.headers), live = open(session, o.live, o.headers);
    stalled.stream.on("response", () => stalled.stream.pause());
    poll(() => stalled.status && live.status, () => fs.writeFileSync(o.ready, "ready\n"), deadline, () => {});
    const first = {};
    poll(() => live.ids.length >= o.liveEvents, () => {
      first.stalledBytes = stalled.bytes;
      first.stalledOpen = !stalled.closed;
      first.liveIds = live.ids.slice();
      fs.writeFileSync(o.ready + ".live", "live\n");
      /* after GO the stalled stream reads again: its bytes then are what the
       * server had sent into its window before it stalled */
      poll(() => fs.existsSync(o.go), () => stalled.stream.resume(), deadline, () => {});
      poll(() => fs.existsSync(o.go) && live.ids.length >= o.liveEvents + (o.moreEvents || 0),
        () => finish({ stalled, live, first, timedOut: false }, 0), deadline,
        () => finish({ stalled, live, first, timedOut: true }, 1));
    }, deadline, () => finish({ stalled, live, first, timedOut: true }, 1));
  } else if (o.mode === "reset") {
    const gone = open(session, o.reset, o.headers), live = open(session, o.live, o.headers);
    poll(() => gone.status && live.status, () => fs.writeFileSync(o.ready, "ready\n"), deadline, () => {});
    poll(() => fs.existsSync(o.go), () => gone.stream.close(http2.constants.NGHTTP2_CANCEL,
      () => fs.writeFileSync(o.go + ".reset", "reset\n")), deadline, () => {});
    poll(() => live.ids.length >= o.liveEvents,
      () => finish({ reset: gone, live, timedOut: false }, 0), deadline, () => finish({ reset: gone, live, timedOut: true }, 1));
  } else {
    throw new Error("mode must be streams, stall or reset");
  }
}

main();
