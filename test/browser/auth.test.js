/*
 * test/browser/auth.test.js: authorization in a real browser, run by
 * test/suites/72-browser-auth.sh against aegis-bridge with --auth-jwt-key.
 *  - the dashboard opened with its token URL: the token moves into the
 *    aegis_token cookie (SameSite=Strict, Path=/) and out of the address bar;
 *    events arrive; a run requested from the page goes by POST, multi-line;
 *  - a page with a token for another workspace shows "not authorized";
 *  - an artifact URL of javascript: is not a link;
 *  - a page on another origin (a second local server) that embeds the
 *    ?message= URL as an <img> and submits a form POST records no run,
 *    although the browser sends the user's cookie (same site: 127.0.0.1).
 * Environment: AEGIS_BRIDGE_BIN, AEGIS_PAGES_DIR, AEGIS_OUT, AEGIS_BRIDGE_PORT,
 * AEGIS_JWT_KEY_FILE, AEGIS_TOKEN (chk-auth + conv-*, run rule_37),
 * AEGIS_TOKEN_OTHER (another workspace).
 */
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");
const T = require("./lib");

const PORT = Number(process.env.AEGIS_BRIDGE_PORT);
const BASE = "http://127.0.0.1:" + PORT;
const OUT = process.env.AEGIS_OUT || "/tmp";
const TOKEN = process.env.AEGIS_TOKEN, OTHER = process.env.AEGIS_TOKEN_OTHER;

function runsOf(conv) {
  return Number(T.psql("SELECT count(*) FROM aegis.run_requests WHERE conversation_id = " + T.sqlLiteral(conv)));
}

async function checkDashboard(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(BASE + "/?checklist=chk-auth&conversations=conv-auth-1&agent_type=rule_37" +
    "&message=" + encodeURIComponent("hello from the page") + "&token=" + TOKEN);
  const address = await page.evaluate(() => window.location.href);
  T.check("dashboard: the token is gone from the address bar", !address.includes("token=") &&
    address.includes("checklist=chk-auth"), address);
  const cookies = await context.cookies(BASE);
  const c = cookies.find((x) => x.name === "aegis_token");
  T.check("dashboard: the token is in the aegis_token cookie, SameSite=Strict, Path=/",
    c && c.value === TOKEN && c.sameSite === "Strict" && c.path === "/" && !c.secure && c.expires > Date.now() / 1000,
    JSON.stringify(c && { sameSite: c.sameSite, path: c.path, secure: c.secure, expires: c.expires }));
  await T.waitFor("the workspace stream to be live", () =>
    page.evaluate(() => document.querySelector(".conn[data-state='live']") !== null), 20000);
  T.psql("SELECT aegis.publish_checklist_item_update('chk-auth', 1, 'Authorized item', 'complete', 'seen', 'agent')");
  T.psql("SELECT aegis.publish_artifact_generated('chk-auth', 'a-evil', 'evil.pdf', 'document', 1, 'javascript:alert(1)')");
  T.psql("SELECT aegis.publish_artifact_generated('chk-auth', 'a-good', 'good.pdf', 'document', 1, 'https://files.example/good.pdf')");
  await T.waitFor("the events to render", () =>
    page.evaluate(() => document.querySelectorAll("#checklist li").length === 1 &&
      document.querySelectorAll("#artifacts li").length === 2), 20000)
    .then(() => T.ok("dashboard: events arrive on the cookie-authorized stream"),
      (e) => T.notOk("dashboard: events arrive on the cookie-authorized stream", e.message));
  const links = await page.$$eval("#artifacts li", (lis) => lis.map((li) => {
    const a = li.querySelector("a");
    return li.dataset.key + "=" + (a ? a.getAttribute("href") : "text");
  }));
  T.check("dashboard: a javascript: artifact URL is text, an https: one a link",
    links.includes("a-evil=text") && links.includes("a-good=https://files.example/good.pdf"), JSON.stringify(links));
  await T.waitFor("the run request to be recorded", async () => runsOf("conv-auth-1") === 1, 20000)
    .catch(() => {});
  T.check("dashboard: the page's run request went by POST with the cookie",
    T.psql("SELECT message || '|' || agent_type FROM aegis.run_requests WHERE conversation_id = 'conv-auth-1'") ===
    "hello from the page|rule_37");
  const posted = await page.evaluate(() => fetch("conversations/conv-auth-2/runs", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Aegis-Request": "1" },
    body: JSON.stringify({ message: "first line\nsecond line", agent_type: "rule_37" })
  }).then((r) => r.status));
  T.check("a same-origin fetch POST with the cookie: 202, the multi-line message stored whole",
    posted === 202 && T.psql("SELECT message FROM aegis.run_requests WHERE conversation_id = 'conv-auth-2'") ===
    "first line\nsecond line", String(posted));
  await page.fill("#ask-message", "asked in the message box");
  await page.click("#ask-send");
  await T.waitFor("the message box's run request", async () =>
    T.psql("SELECT count(*) FROM aegis.run_requests WHERE message = 'asked in the message box'") === "1", 20000)
    .then(() => T.ok("dashboard: the message box's question goes by POST with the cookie and is recorded"),
      (e) => T.notOk("dashboard: the message box's question goes by POST with the cookie and is recorded", e.message));
  T.check("dashboard: no page errors (the CSP blocks nothing the page needs)", errors.length === 0, errors.join(" | "));
  await page.screenshot({ path: path.join(OUT, "dashboard-authorized.png"), fullPage: true });
  await context.close();
}

async function checkNotAuthorized(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(BASE + "/?checklist=chk-auth&conversations=conv-auth-2&token=" + OTHER);
  const shown = await T.waitFor("the page to say it is not authorized", () =>
    page.evaluate(() => {
      const banner = document.getElementById("page-errors");
      const badges = Array.prototype.map.call(document.querySelectorAll(".conn"), (b) => b.textContent);
      return !banner.hidden && banner.textContent.includes("Not authorized") &&
        badges.every((t) => t.includes("not authorized")) ? { banner: banner.textContent, badges } : null;
    }), 20000).catch(() => null);
  T.check("a token for another workspace: the page shows 'not authorized' on every stream", shown !== null,
    await page.evaluate(() => document.body.innerText.slice(0, 400)));
  T.psql("SELECT aegis.publish_checklist_item_update('chk-auth', 2, 'Hidden item', 'complete', 'secret', 'agent')");
  await T.sleep(1500);
  const items = await page.$$eval("#checklist li", (l) => l.length);
  T.check("a token for another workspace: no event reaches the page", items === 0, String(items));
  await page.screenshot({ path: path.join(OUT, "dashboard-not-authorized.png"), fullPage: true });
  await context.close();
}

/* the attacker's page, on another origin of the same site (127.0.0.1, another
 * port): the browser sends the SameSite=Strict cookie along */
function attackerServer(port) {
  const target = BASE + "/conversations/conv-csrf/";
  const page = "<!DOCTYPE html><html><body>" +
    "<img src='" + target + "stream?message=pwned&agent_type=rule_37'>" +
    "<form id=f method=POST enctype='text/plain' action='" + target + "runs'>" +
    "<input name='{\"message\":\"pwned\",\"agent_type\":\"rule_37\",\"x\":\"' value='\"}'></form>" +
    "<script>document.getElementById('f').submit();</script></body></html>";
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end(page);
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

async function checkCsrf(browser, attackerPort) {
  const server = await attackerServer(attackerPort);
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(BASE + "/?checklist=chk-auth&conversations=&token=" + TOKEN);   /* the user logs in */
    const requests = [];
    page.on("request", (r) => { if (r.url().startsWith(BASE + "/conversations/conv-csrf/")) requests.push(r.method()); });
    await page.goto("http://127.0.0.1:" + attackerPort + "/");
    await T.waitFor("the browser to send the <img> and the form", () => requests.length >= 2, 15000).catch(() => {});
    await T.sleep(1000);
    T.check("the attacker page made the browser send both requests", requests.includes("GET") && requests.includes("POST"),
      JSON.stringify(requests));
    T.check("a page on another origin (<img> with ?message=, form POST) recorded no run", runsOf("conv-csrf") === 0,
      String(runsOf("conv-csrf")));
  } finally {
    await context.close();
    server.close();
  }
}

async function run() {
  const bridge = new T.Bridge(process.env.AEGIS_BRIDGE_BIN,
    ["--listen", "127.0.0.1:" + PORT, "--static-dir", process.env.AEGIS_PAGES_DIR, "--heartbeat-seconds", "1",
      "--auth-jwt-key", process.env.AEGIS_JWT_KEY_FILE, "--no-drain"],
    path.join(OUT, "bridge.log"), path.join(OUT, "bridge.pids"));
  await bridge.start(BASE);
  const browser = await T.launchBrowser();
  try {
    await checkDashboard(browser);
    await checkNotAuthorized(browser);
    await checkCsrf(browser, Number(process.env.AEGIS_ATTACKER_PORT));
  } finally {
    await browser.close();
    await bridge.stop("SIGTERM");
  }
  const log = fs.readFileSync(path.join(OUT, "bridge.log"), "utf8");
  T.check("the bridge's log holds neither token", !log.includes(TOKEN) && !log.includes(OTHER));
}

run().catch((e) => { T.notOk("browser auth scenario ran to the end", e.stack || String(e)); })
  .finally(() => T.finish("auth"));
