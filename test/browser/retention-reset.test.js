/*
 * test/browser/retention-reset.test.js: the dashboard and a retention reset,
 * run by test/suites/73-browser-reset.sh.  The dashboard shows three
 * checklist items; the bridge is killed; a fourth item is published and
 * retention removes all four (the page has seen three, so it resumes below
 * the horizon); one new item is published; the bridge restarts.  EventSource
 * reconnects with Last-Event-ID, gets `reset` and then the retained event:
 * the dashboard must clear the workspace view and show only the new item.
 * Environment: AEGIS_BRIDGE_BIN, AEGIS_PAGES_DIR, AEGIS_OUT, AEGIS_BRIDGE_PORT, PG*.
 */
"use strict";

const path = require("path");
const T = require("./lib");

const OUT = process.env.AEGIS_OUT || "/tmp";
const BASE = "http://127.0.0.1:" + process.env.AEGIS_BRIDGE_PORT;
const WS = "chk-reset-" + process.pid;
const q = T.sqlLiteral(WS);

function item(index, name, status) {
  return T.psql("SELECT aegis.publish_checklist_item_update(" + q + ", " + index + ", " +
    T.sqlLiteral(name) + ", " + T.sqlLiteral(status) + ")");
}

function shown(page) {
  return page.evaluate(() => Array.prototype.map.call(
    document.querySelectorAll("#checklist > *"), (li) => li.dataset.key).join(","));
}

async function run() {
  const bridge = new T.Bridge(process.env.AEGIS_BRIDGE_BIN,
    ["--listen", "127.0.0.1:" + process.env.AEGIS_BRIDGE_PORT, "--static-dir", process.env.AEGIS_PAGES_DIR,
     "--heartbeat-seconds", "1", "--retry-ms", "500", "--no-drain"],
    path.join(OUT, "bridge.log"), path.join(OUT, "bridge.pids"));
  await bridge.start(BASE);
  const browser = await T.launchBrowser();
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => T.notOk("no page error", e.message));
    await page.goto(BASE + "/?checklist=" + WS + "&conversations=");
    item(0, "Intake", "complete");
    item(1, "Offset wells", "complete");
    item(2, "Spacing", "in_progress");
    await T.waitFor("three checklist items on the dashboard", async () => (await shown(page)) === "0,1,2", 20000);
    T.ok("the dashboard shows items 0, 1, 2");

    await bridge.stop("SIGKILL");
    item(3, "Notice", "pending");                       /* never reaches the page */
    T.psql("SELECT aegis.set_retention('workspace', '0')");
    const removed = T.psql("SELECT aegis.enforce_retention()");
    T.psql("SELECT aegis.set_retention('workspace', NULL)");
    T.check("retention removed the four items", removed === "4", "removed " + removed);
    item(7, "Hearing", "pending");
    await bridge.start(BASE);

    const got = await T.waitFor("the dashboard to show only item 7", async () =>
      (await shown(page)) === "7" ? "7" : null, 30000).catch((e) => e.message);
    T.check("after the reset the dashboard shows only the retained item", got === "7",
      "checklist shows " + got);
    const log = await page.evaluate(() => window.aegisStreams.log.map((e) => e.type + ":" +
      (e.type === "reset" ? e.data.horizon + "/" + e.data.reason : e.data.item_index)).join(","));
    const horizon = T.psql("SELECT aegis.stream_horizon('workspace', " + q + ")");
    T.check("the page received reset (horizon, retention) before the retained event",
      log.endsWith("reset:" + horizon + "/retention,checklist_item_update:7"), log);
    T.check("the stream is live again", await page.evaluate(() =>
      document.querySelector(".conn").dataset.state === "live"));
    await page.screenshot({ path: path.join(OUT, "reset.png") });
  } finally {
    await browser.close();
    await bridge.stop("SIGTERM");
  }
}

run().catch((e) => T.notOk("retention reset scenario", e.stack)).finally(() => T.finish("retention-reset"));
