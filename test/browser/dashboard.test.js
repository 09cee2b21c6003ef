/*
 * test/browser/dashboard.test.js: issue 6's dashboard test, run by
 * test/suites/80-demo-dashboard.sh while `make demo --once` replays.
 * Headless Debian chromium loads the dashboard from the bridge, waits for the
 * summary card, checks that each component shows what demo/replay.sql
 * published, and saves a screenshot. Any empty component fails the test.
 * Environment: AEGIS_DASHBOARD_URL (the URL the demo printed), AEGIS_OUT.
 */
"use strict";

const path = require("path");
const T = require("./lib");

const URL_ = process.env.AEGIS_DASHBOARD_URL;
const OUT = process.env.AEGIS_OUT || "/tmp";

/* what demo/replay.sql leaves on screen */
const EXPECT = {
  items: 12,
  statuses: ["complete", "complete", "complete", "complete", "complete", "complete", "complete",
    "complete", "needs_review", "complete", "complete", "complete"],
  firstRow: ["Smith #3", "42-329-40003", "Devon", "890"],
  tableRows: 4,
  points: ["Permian Basin 12H", "Smith #3", "Smith #4", "Jones Unit 1", "Baker A-2"],
  artifacts: ["Location plat - Permian Basin 12H.pdf", "Offset wells.csv", "Form W-1 draft.pdf", "Reviewer notes.txt"],
  conv1Nodes: ["system_prompt_node", "memory_node", "initial_llm_call", "tool_node", "initial_llm_call",
    "skill_select_node", "skill_inject_node", "approval_node", "synthesis_llm_call", "output_format"],
  conv2Nodes: ["system_prompt_node", "memory_node", "initial_llm_call", "tool_node"]
};

const GREEN = "rgb(21, 128, 61)", AMBER = "rgb(180, 83, 9)", RED = "rgb(185, 28, 28)";

async function checkComponentsNotEmpty(page) {
  const empty = await page.evaluate(() =>
    Array.prototype.filter.call(document.querySelectorAll("[data-component]"), (s) => {
      const clone = s.cloneNode(true);
      clone.querySelectorAll("h2, .legend").forEach((h) => h.remove());
      return clone.textContent.trim() === "" && clone.querySelectorAll("circle").length === 0;
    }).map((s) => s.dataset.component));
  T.check("no component is empty", empty.length === 0, "empty: " + empty.join(", "));
}

async function checkChecklist(page) {
  const statuses = await page.$$eval("#checklist li", (lis) => lis.map((li) => li.dataset.status));
  T.check("checklist: " + EXPECT.items + " items with their final statuses",
    JSON.stringify(statuses) === JSON.stringify(EXPECT.statuses), JSON.stringify(statuses));
  const icon = await page.$eval("#checklist li[data-key='8'] .icon", (e) => e.textContent);
  T.check("checklist: the item needing review shows the warning icon", icon === "\u26A0", icon);
  const seed = await page.$eval("#checklist li[data-key='2']", (e) => e.textContent);
  T.check("checklist: the seed's item 2 summary", seed.includes("Found 4 offset wells within 1,200 ft"), seed);
}

async function checkTable(page) {
  const rows = await page.$$eval("table[data-item='2'] tbody tr", (trs) =>
    trs.map((tr) => Array.prototype.map.call(tr.cells, (c) => c.textContent)));
  T.check("data table: " + EXPECT.tableRows + " offset-well rows", rows.length === EXPECT.tableRows, String(rows.length));
  T.check("data table: first row is the seed's Smith #3", JSON.stringify(rows[0]) === JSON.stringify(EXPECT.firstRow),
    JSON.stringify(rows[0]));
  const head = await page.$$eval("table[data-item='2'] th", (ths) => ths.map((t) => t.textContent));
  T.check("data table: the seed's columns", JSON.stringify(head) === JSON.stringify(["Well Name", "API", "Operator", "Distance (ft)"]),
    JSON.stringify(head));
}

async function fieldColour(page, name) {
  return page.$eval("#form [data-key='" + name + "']", (e) =>
    ({ cls: e.className, border: getComputedStyle(e).borderLeftColor, text: e.textContent }));
}

async function checkForm(page) {
  const op = await fieldColour(page, "operator_name");
  T.check("form: operator_name is Permian Basin Energy LLC at 98 %",
    op.text.includes("Permian Basin Energy LLC") && op.text.includes("98 %"), op.text);
  T.check("form: a 0.98 confidence field is green", op.cls.includes("conf-high") && op.border === GREEN, JSON.stringify(op));
  const mid = await fieldColour(page, "total_depth_ft");
  T.check("form: a 0.78 confidence field is amber", mid.cls.includes("conf-medium") && mid.border === AMBER, JSON.stringify(mid));
  const low = await fieldColour(page, "exception_reason");
  T.check("form: a 0.62 confidence field is red", low.cls.includes("conf-low") && low.border === RED, JSON.stringify(low));
  const n = await page.$$eval("#form .field", (f) => f.length);
  T.check("form: 9 fields", n === 9, String(n));
}

async function checkValidations(page) {
  const warn = await page.$$eval("#validations li[data-severity='warning']", (lis) =>
    lis.map((li) => ({ passed: li.dataset.passed, text: li.textContent })));
  T.check("validation: the seed's service-list warning, failed, with its message",
    warn.length === 1 && warn[0].passed === "false" && warn[0].text.includes("Service list completeness") &&
    warn[0].text.includes("2 offset operators missing addresses"), JSON.stringify(warn));
  const order = await page.$$eval("#validations li", (lis) => lis.map((li) => li.dataset.passed));
  T.check("validation: 7 checks, failed ones first", order.length === 7 &&
    order.join(",") === "false,false,true,true,true,true,true", order.join(","));
}

async function checkMap(page) {
  const points = await page.$$eval("#map circle", (cs) => cs.map((c) => c.dataset.name).sort());
  T.check("map: the subject well and 4 offset wells as points",
    JSON.stringify(points) === JSON.stringify(EXPECT.points.slice().sort()), JSON.stringify(points));
  const shapes = await page.evaluate(() => ({
    polygons: document.querySelectorAll("#map polygon").length,
    lines: document.querySelectorAll("#map polyline").length,
    distances: document.querySelectorAll("#map line.map-distance").length,
    inside: Array.prototype.every.call(document.querySelectorAll("#map circle"), (c) => {
      const x = Number(c.getAttribute("cx")), y = Number(c.getAttribute("cy"));
      return x >= 0 && x <= 400 && y >= 0 && y <= 300;
    })
  }));
  T.check("map: lease polygon, lateral line, 4 distance lines, every point inside the map",
    shapes.polygons === 1 && shapes.lines === 1 && shapes.distances === 4 && shapes.inside, JSON.stringify(shapes));
  const list = await page.$eval("#distances", (e) => e.textContent);
  T.check("map: distances listed (Smith #3 at 890 ft)", list.includes("Smith #3: 890 ft"), list);
}

async function checkArtifacts(page, base) {
  const links = await page.$$eval("#artifacts a", (as) => as.map((a) => ({ name: a.textContent, href: a.href,
    download: a.hasAttribute("download") })));
  T.check("artifacts: 4 download links", JSON.stringify(links.map((l) => l.name)) === JSON.stringify(EXPECT.artifacts) &&
    links.every((l) => l.download), JSON.stringify(links));
  const codes = await Promise.all(links.map((l) => T.httpStatus(l.href)));
  T.check("artifacts: every link downloads from the bridge (200)", codes.every((c) => c === 200), codes.join(","));
}

async function checkProgressAndSummary(page) {
  const p = await page.evaluate(() => ({ status: document.getElementById("progress").dataset.status,
    width: document.getElementById("progress-fill").style.width }));
  T.check("progress bar: completed at 100%", p.status === "completed" && p.width === "100%", JSON.stringify(p));
  const s = await page.evaluate(() => ["sum-items", "sum-passed", "sum-failed"].map((id) =>
    document.getElementById(id).textContent));
  T.check("summary card: 11 / 12 items, 5 passed, 2 failed", JSON.stringify(s) === JSON.stringify(["11 / 12", "5", "2"]),
    JSON.stringify(s));
}

async function checkConversations(page) {
  const c = await page.evaluate(() => Array.prototype.map.call(document.querySelectorAll(".conversation"), (box) => ({
    id: box.dataset.key,
    nodes: Array.prototype.map.call(box.querySelectorAll(".nodes li"), (li) => li.dataset.node),
    assistant: box.querySelectorAll(".msg.role-assistant").length,
    outcome: box.querySelector(".outcome").className, text: box.querySelector(".outcome").textContent })));
  const one = c.find((x) => x.id === "conv-demo-1"), two = c.find((x) => x.id === "conv-demo-2");
  T.check("conversation 1: every node as it ended, system_prompt_node ... output_format",
    one && JSON.stringify(one.nodes) === JSON.stringify(EXPECT.conv1Nodes), JSON.stringify(one && one.nodes));
  T.check("conversation 1: the assistant messages", one && one.assistant === 3, JSON.stringify(one));
  T.check("conversation 1: done with the execution summary", one && one.outcome.includes("done") &&
    one.text.includes("exec-abc-123") && one.text.includes("5,678 tokens") && one.text.includes("$0.045"), JSON.stringify(one));
  T.check("conversation 2: ends in the Budget exceeded error", two && two.outcome.includes("error") &&
    two.text.includes("Budget exceeded: 150000 tokens") && JSON.stringify(two.nodes) === JSON.stringify(EXPECT.conv2Nodes),
    JSON.stringify(two));
}

/* a page opened after the replay: the workspace replays from its start, and
 * each finished conversation replays its latest run (the bridge ends the
 * stream after done/error and answers the reconnect 204): the page shows the
 * nodes and the outcome, each event once, and says the stream "ended" */
async function checkLatePage(browser) {
  const late = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await late.goto(URL_);
  try {
    await T.waitFor("the late page's summary card", () =>
      late.evaluate(() => document.getElementById("summary").dataset.complete === "true"), 30000);
    const items = await late.$$eval("#checklist li", (l) => l.length);
    T.check("a page opened after the replay shows the whole assessment", items === EXPECT.items, String(items));
  } catch (e) {
    T.notOk("a page opened after the replay shows the whole assessment", e.message);
  }
  const ended = await T.waitFor("the late page's conversation streams to end", () =>
    late.evaluate(() => {
      const badges = Array.prototype.filter.call(document.querySelectorAll(".conn"),
        (b) => b.dataset.stream.startsWith("conversation "));
      return badges.length === 2 && badges.every((b) => b.dataset.state === "ended");
    }), 20000).then(() => true, () => false);
  const c = await late.evaluate(() => ({
    convs: Array.prototype.map.call(document.querySelectorAll(".conversation"), (box) => ({
      id: box.dataset.key,
      nodes: Array.prototype.map.call(box.querySelectorAll(".nodes li"), (li) => li.dataset.node),
      outcome: box.querySelector(".outcome").className, text: box.querySelector(".outcome").textContent })),
    badges: Array.prototype.map.call(document.querySelectorAll(".conn"), (b) => b.dataset.stream + "=" + b.dataset.state),
    log: window.aegisStreams.log.map((e) => e.stream + "#" + e.id) }));
  const one = c.convs.find((x) => x.id === "conv-demo-1"), two = c.convs.find((x) => x.id === "conv-demo-2");
  T.check("a page opened after the runs shows conversation 1's run: every node, then done",
    one && JSON.stringify(one.nodes) === JSON.stringify(EXPECT.conv1Nodes) && one.outcome.includes("done") &&
    one.text.includes("exec-abc-123"), JSON.stringify(one));
  T.check("a page opened after the runs shows conversation 2's run: every node, then the error",
    two && JSON.stringify(two.nodes) === JSON.stringify(EXPECT.conv2Nodes) && two.outcome.includes("error") &&
    two.text.includes("Budget exceeded: 150000 tokens"), JSON.stringify(two));
  T.check("late page: both conversation streams shown as ended (not refused), no event twice",
    ended && new Set(c.log).size === c.log.length, JSON.stringify(c.badges) + " " + c.log.length + " events");
  await late.screenshot({ path: path.join(OUT, "dashboard-late.png"), fullPage: true });
  await late.close();
}

/* bad ids in the page address: a clear message, no stream opened for them */
async function checkBadIds(browser) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const base = URL_.replace(/\?.*$/, "");
  await page.goto(base + "?checklist=bad%20id&conversations=conv-demo-1,..%2Fetc," + "x".repeat(129));
  await T.waitFor("the conversation stream to settle", () =>
    page.evaluate(() => document.querySelector(".conn") && document.querySelector(".conn").dataset.state !== undefined), 15000)
    .catch(() => {});
  const r = await page.evaluate(() => ({
    banner: document.getElementById("page-errors").hidden ? "" : document.getElementById("page-errors").textContent,
    streams: Array.prototype.map.call(document.querySelectorAll(".conn"), (b) => b.dataset.stream) }));
  T.check("bad ids in the page address are named in a message",
    r.banner.includes("Bad checklist id 'bad id'") && r.banner.includes("Bad conversation id '../etc'") &&
    r.banner.includes("Bad conversation id 'xxxx"), r.banner);
  T.check("no stream is opened for a bad id, the good one is",
    JSON.stringify(r.streams) === JSON.stringify(["conversation conv-demo-1"]), JSON.stringify(r.streams));
  T.check("bad ids cause no page error", errors.length === 0, errors.join(" | "));
  await page.close();
}

async function run() {
  if (!URL_) throw new Error("AEGIS_DASHBOARD_URL is not set");
  const browser = await T.launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(URL_);
    await T.waitFor("the workspace stream to be live", () =>
      page.evaluate(() => document.querySelector(".conn[data-state='live']") !== null), 20000);
    T.ok("dashboard loaded from the bridge, workspace stream live");
    await T.waitFor("the summary card", () =>
      page.evaluate(() => document.getElementById("summary").dataset.complete === "true"), 120000);
    await T.waitFor("both conversations to finish", () =>
      page.evaluate(() => document.querySelectorAll(".outcome.done, .outcome.error").length === 2), 60000);
    T.ok("summary card shown and both conversations finished");
    await checkComponentsNotEmpty(page);
    await checkChecklist(page);
    await checkTable(page);
    await checkForm(page);
    await checkValidations(page);
    await checkMap(page);
    await checkArtifacts(page, URL_);
    await checkProgressAndSummary(page);
    await checkConversations(page);
    const log = await page.evaluate(() => window.aegisStreams.log.map((e) => e.stream + "#" + e.id));
    T.check("no event rendered twice", new Set(log).size === log.length, log.length + " events");
    T.check("no page errors", errors.length === 0, errors.join(" | "));
    await page.screenshot({ path: path.join(OUT, "dashboard.png"), fullPage: true });
    T.diag("screenshot: " + path.join(OUT, "dashboard.png"));
    require("fs").writeFileSync(path.join(OUT, "dashboard-events.txt"), log.join("\n") + "\n");
    await checkLatePage(browser);
    await checkBadIds(browser);
  } finally {
    await browser.close();
  }
}

run().catch((e) => { T.notOk("dashboard scenario ran to the end", e.stack || String(e)); })
  .finally(() => T.finish("dashboard"));
