/*
 * test/browser/streams20.test.js: issue 14's browser test, run by
 * test/suites/69-tls.sh. Headless Debian chromium loads pages/streams20.html
 * from AEGIS_BASE (the bridge over HTTPS, the bridge over plain HTTP/1.1, or
 * nginx in front of the bridge) and opens 20 EventSources at once: one
 * workspace and 19 conversations. Events are published through SQL to all 20
 * streams after the page has settled; each live stream must get exactly its
 * own events, in store order. AEGIS_EXPECT_LIVE says how many streams must be
 * live: 20 over HTTP/2; over HTTP/1.1 exactly 6 (the browser's connection
 * limit per origin) while the other 14 stay connecting and get nothing.
 * AEGIS_EXPECT_PROTOCOL is the page's nextHopProtocol ("h2" or "http/1.1").
 * Environment: AEGIS_BASE, AEGIS_EXPECT_LIVE, AEGIS_EXPECT_PROTOCOL,
 * AEGIS_LABEL (prefix of the test names), AEGIS_OUT (a folder), PG*.
 */
"use strict";

const fs = require("fs");
const path = require("path");
const util = require("util");
const T = require("./lib");

const BASE = process.env.AEGIS_BASE;
const EXPECT_LIVE = Number(process.env.AEGIS_EXPECT_LIVE || "20");
const PROTOCOL = process.env.AEGIS_EXPECT_PROTOCOL || "h2";
const LABEL = process.env.AEGIS_LABEL || BASE;
const OUT = process.env.AEGIS_OUT || "/tmp";
const TAG = LABEL.replace(/[^A-Za-z0-9]+/g, "-") + "-" + process.pid;
const WS = "ws20-" + TAG;
const CONVS = Array.from({ length: 19 }, (_, i) => "conv20-" + TAG + "-" + (i + 1));
const ROUNDS = 2;

function name(s) { return LABEL + ": " + s; }

/* publishes ROUNDS events to every stream, one psql call per round */
function publishRound(round) {
  const stmts = ["SELECT aegis.publish_agent_status(" + T.sqlLiteral(WS) + ", 'running', 'round " + round + "')"];
  CONVS.forEach((c) => stmts.push("SELECT aegis.publish_conversation_event(" + T.sqlLiteral(c) +
    ", 'node_end', 'step_" + round + "', " + T.sqlLiteral(JSON.stringify({ status: "running", tokens_used: round, message: { role: "assistant", content: c } })) + "::jsonb)"));
  T.psql(stmts.join("; "));
}

function storeIds(kind, id) {
  const out = T.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.events WHERE stream_kind = " +
    T.sqlLiteral(kind) + " AND stream_id = " + T.sqlLiteral(id));
  return out ? out.split(",") : [];
}

function expectedIds(label) {
  return label === "workspace" ? storeIds("workspace", WS) : storeIds("conversation", label.slice("conversation ".length));
}

async function main() {
  const browser = await T.launchBrowser();
  let page;
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    page = await ctx.newPage();
    const url = BASE + "/static/streams20.html?workspace=" + encodeURIComponent(WS) +
      "&conversations=" + CONVS.map(encodeURIComponent).join(",");
    await page.goto(url);
    const proto = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
    T.check(name("the page came over " + PROTOCOL), proto === PROTOCOL, "nextHopProtocol " + proto);
    const summary = () => page.evaluate(() => window.probe.summary());
    const opened = await T.waitFor(EXPECT_LIVE + " streams open", async () => {
      const s = await summary();
      return s.filter((x) => x.opens > 0).length >= EXPECT_LIVE ? s : null;
    }, 30000).catch((e) => { T.notOk(name(EXPECT_LIVE + " streams open"), e.message); return null; });
    if (!opened) return;
    for (let r = 1; r <= ROUNDS; r++) publishRound(r);
    /* every live stream has all its events (the store says which) */
    const done = await T.waitFor("every live stream's events", async () => {
      const s = await summary();
      const live = s.filter((x) => x.opens > 0);
      return live.length >= EXPECT_LIVE && live.every((x) => x.ids.length >= ROUNDS) ? s : null;
    }, 30000).catch((e) => { T.notOk(name("every live stream gets its events"), e.message); return null; });
    if (!done) return;
    /* a round trip through SQL after the wait: anything still on its way to a
     * stream that is not live would have come through one of the live ones
     * first (same bridge, same reader); take the final picture now */
    const s = await summary();
    fs.writeFileSync(path.join(OUT, "streams20-" + TAG + ".json"), JSON.stringify(s, null, 1));
    const live = s.filter((x) => x.opens > 0), idle = s.filter((x) => x.opens === 0);
    T.check(name("20 EventSources on the page"), s.length === 20, s.length + " streams");
    T.check(name("exactly " + EXPECT_LIVE + " streams live"), live.length === EXPECT_LIVE,
      live.length + " live: " + live.map((x) => x.label).join(", "));
    const wrong = live.filter((x) => !util.isDeepStrictEqual(x.ids, expectedIds(x.label)));
    T.check(name("each live stream got exactly its own events, in store order"), wrong.length === 0,
      wrong.slice(0, 3).map((x) => x.label + " got " + x.ids.join(",") + " want " + expectedIds(x.label).join(",")).join("; "));
    T.check(name("no live stream reconnected or saw an error"), live.every((x) => x.opens === 1 && x.errors === 0),
      JSON.stringify(live.filter((x) => x.opens !== 1 || x.errors !== 0).map((x) => [x.label, x.opens, x.errors])));
    if (EXPECT_LIVE < 20) {
      T.check(name("the other " + (20 - EXPECT_LIVE) + " streams are still connecting and got no event"),
        idle.length === 20 - EXPECT_LIVE && idle.every((x) => x.readyState === 0 && x.ids.length === 0),
        JSON.stringify(idle.map((x) => [x.label, x.readyState, x.ids.length])));
    }
    await page.screenshot({ path: path.join(OUT, "streams20-" + TAG + ".png") });
  } finally {
    await browser.close();
  }
}

main().catch((e) => T.notOk(name("streams20 scenario"), e.stack || e.message)).finally(() => T.finish("streams20 " + LABEL));
