/*
 * test/browser/sse-restart.test.js: issue 4's real-browser test, run by
 * test/suites/70-browser-sse.sh (which starts PostgreSQL with the extension).
 * Headless Debian chromium opens EventSource on a workspace and a conversation
 * (pages/sse-probe.html, served by the bridge); the seed's example events are
 * published through SQL in three phases: with the bridge up, while it is
 * killed (SIGKILL), and after it is restarted. The page must end with every
 * event exactly once, in store order, with the right names and payloads; the
 * conversation stream ends after `done` and EventSource does not reconnect.
 * The dashboard (web/) watches the same streams in a second tab: it must show
 * the connection state through the restart and render every event once.
 * Environment: AEGIS_BRIDGE_BIN, AEGIS_PAGES_DIR, AEGIS_OUT (a folder), PG*.
 */
"use strict";

const path = require("path");
const fs = require("fs");
const util = require("util");
const T = require("./lib");

const OUT = process.env.AEGIS_OUT || "/tmp";
const PORT = process.env.AEGIS_BRIDGE_PORT;
const BASE = "http://127.0.0.1:" + PORT;
const WS = "chk-sse-" + process.pid;
const CONV = "conv-sse-" + process.pid;

/* ---- what is published: the seed's examples first ---- */

const SEED_WORKSPACE = [
  { event_type: "checklist_item_update", item_index: 2, item_name: "Offset Well Identification",
    status: "complete", summary: "Found 4 offset wells within 1,200 ft", completed_by: "agent" },
  { event_type: "data_table_update", item_index: 2, columns: ["Well Name", "API", "Operator", "Distance (ft)"],
    rows: [{ "Well Name": "Smith #3", API: "42-329-40003", Operator: "Devon", "Distance (ft)": 890 }], total_rows: 4 },
  { event_type: "form_field_update", item_index: 5, field_name: "operator_name",
    field_value: "Permian Basin Energy LLC", confidence: 0.98, source: "knowledge_graph:P-5" },
  { event_type: "validation_result", item_index: 10, check_name: "Service list completeness",
    passed: false, message: "2 offset operators missing addresses", severity: "warning" }
];
const DOWN_WORKSPACE = [
  { event_type: "artifact_generated", artifact_id: "art-1", name: "Location plat.pdf", artifact_type: "pdf",
    item_index: 6, url: "static/artifacts/location-plat.pdf", mime_type: "application/pdf", size_bytes: 935 },
  { event_type: "spatial_update", item_index: 2, geojson: { type: "FeatureCollection", features: [
    { type: "Feature", properties: { name: "Smith #3" }, geometry: { type: "Point", coordinates: [-102.08296, 31.90173] } }] },
    distances: [{ from: "Permian Basin 12H", to: "Smith #3", distance_ft: 890 }] }
];
const AFTER_WORKSPACE = [
  { event_type: "agent_status", status: "completed", message: "done", progress: 1, item_index: 11, agent: "compliance-agent" },
  { event_type: "assessment_complete", total_items: 12, completed_items: 11, passed_checks: 5, failed_checks: 2,
    summary: "ready for review", duration_ms: 4200 }
];

function node(name, status, tokens, message, skills) {
  return { event: "node_end", node: name, data: { status: status, tokens_used: tokens,
    message: message, skills_injected: skills || [] } };
}
const SEED_CONVERSATION = [
  node("system_prompt_node", "running", 412, { role: "system", content: "You are the Rule 37 agent." }),
  node("memory_node", "running", 96, { role: "system", content: "No earlier conversation." }),
  node("initial_llm_call", "running", 1234, { role: "assistant", content: "I'll calculate the spacing..." })
];
const DOWN_CONVERSATION = [
  node("tool_node", "running", 0, { role: "tool", content: "offset_well_search: 4 wells" }),
  node("initial_llm_call", "running", 1710, { role: "assistant", content: "Four offset wells found." })
];
const AFTER_CONVERSATION = [
  node("skill_select_node", "running", 88, { role: "system", content: "skills selected" }),
  node("skill_inject_node", "running", 640, { role: "system", content: "skills injected" },
    ["spacing-calculation", "offset-well-analysis"]),
  node("approval_node", "running", 0, { role: "system", content: "approved" }),
  node("synthesis_llm_call", "completed", 1450, { role: "assistant", content: "A Rule 37 exception is required." }),
  node("output_format", "completed", 0, { role: "system", content: "formatted" }),
  { event: "done", node: null, data: { execution_id: "exec-abc-123", status: "completed", tokens_used: 5678,
    cost_usd: 0.045, skills_injected: ["spacing-calculation", "offset-well-analysis"] } }
];

/* ---- publishing ---- */

function publishWorkspace(ev) {
  const type = ev.event_type;
  return T.psql("SELECT aegis.publish_workspace_event(" + T.sqlLiteral(WS) + ", " + T.sqlLiteral(type) +
    ", " + T.sqlLiteral(JSON.stringify(ev)) + "::jsonb)");
}

function publishConversation(ev) {
  return T.psql("SELECT aegis.publish_conversation_event(" + T.sqlLiteral(CONV) + ", " + T.sqlLiteral(ev.event) +
    ", " + (ev.node === null ? "NULL" : T.sqlLiteral(ev.node)) + ", " + T.sqlLiteral(JSON.stringify(ev.data)) + "::jsonb)");
}

function publishPhase(workspace, conversation) {
  workspace.forEach(publishWorkspace);
  conversation.forEach(publishConversation);
}

/* ---- reading the page ---- */

function received(page, label) {
  return page.evaluate((l) => window.probe.events.filter((e) => e.stream === l), label);
}

async function waitReceived(page, label, n, what) {
  return T.waitFor(what, async () => {
    const got = await received(page, label);
    return got.length >= n ? got : null;
  }, 30000);
}

function storeIds(kind, id) {
  const out = T.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.events WHERE stream_kind = " +
    T.sqlLiteral(kind) + " AND stream_id = " + T.sqlLiteral(id));
  return out ? out.split(",") : [];
}

/* ---- checks ---- */

function checkStream(label, got, expected, kind, streamId, payloadOf) {
  const ids = got.map((e) => e.id);
  T.check(label + ": every event exactly once (" + expected.length + " events)",
    got.length === expected.length && new Set(ids).size === ids.length,
    "got " + got.length + " events, " + new Set(ids).size + " distinct ids: " + ids.join(","));
  T.check(label + ": ids are the store's positions, in order",
    util.isDeepStrictEqual(ids, storeIds(kind, streamId)), "page " + ids.join(",") + " store " + storeIds(kind, streamId).join(","));
  T.check(label + ": every event is JSON", got.every((e) => e.parseError === null),
    got.filter((e) => e.parseError).map((e) => e.raw).join(" | "));
  const names = got.map((e) => e.type), wantNames = expected.map((e) => e.event_type || e.event);
  T.check(label + ": event names in publish order", util.isDeepStrictEqual(names, wantNames),
    "got " + names.join(",") + " want " + wantNames.join(","));
  const bad = expected.map((want, i) => [i, want]).filter(([i, want]) =>
    !got[i] || !util.isDeepStrictEqual(payloadOf(got[i].data), payloadOf(want)));
  T.check(label + ": payloads as published", bad.length === 0,
    bad.slice(0, 2).map(([i, want]) => "#" + i + " got " + JSON.stringify(got[i] && got[i].data) +
      " want " + JSON.stringify(want)).join("; "));
}

/* conversation events: compare event, data and (for node_end) node */
function conversationShape(e) {
  if (!e) return e;
  return e.event === "node_end" ? { event: e.event, node: e.node, data: e.data } : { event: e.event, data: e.data };
}

/* ---- the dashboard in a second tab ---- */

function waitBadge(page, kind, state) {
  return T.waitFor("the dashboard's " + kind + " badge to say " + state, () =>
    page.evaluate(([k, st]) => Array.prototype.some.call(document.querySelectorAll(".conn"),
      (b) => b.dataset.stream.startsWith(k + " ") && b.dataset.state === st), [kind, state]), 20000);
}

async function checkDashboard(dash, nWorkspace, nConversation) {
  await waitBadge(dash, "workspace", "live").then(() => T.ok("dashboard: workspace stream live again after the restart"),
    (e) => T.notOk("dashboard: workspace stream live again after the restart", e.message));
  await waitBadge(dash, "conversation", "ended").then(() => T.ok("dashboard: conversation stream shown as ended"),
    (e) => T.notOk("dashboard: conversation stream shown as ended", e.message));
  const log = await dash.evaluate(() => window.aegisStreams.log.map((e) => e.stream.split(" ")[0] + ":" + e.id));
  const ws = log.filter((x) => x.startsWith("workspace:")), conv = log.filter((x) => x.startsWith("conversation:"));
  T.check("dashboard: every event rendered exactly once across the restart",
    ws.length === nWorkspace && conv.length === nConversation && new Set(log).size === log.length,
    ws.length + " workspace, " + conv.length + " conversation, " + new Set(log).size + " distinct");
  const shown = await dash.evaluate(() => ({
    summary: document.getElementById("summary").dataset.complete === "true",
    outcome: document.querySelector(".outcome").textContent,
    checklist: document.querySelectorAll("#checklist li").length,
    points: document.querySelectorAll("#map circle").length }));
  T.check("dashboard: summary card, done outcome, checklist item and map point rendered",
    shown.summary && shown.outcome.includes("exec-abc-123") && shown.checklist === 1 && shown.points === 1,
    JSON.stringify(shown));
}

/* the dashboard renders events that carry only their required fields (the
 * typed helpers store the optional ones as null) without a page error */
async function checkMinimalPayloads(browser) {
  const ws = "chk-min-" + process.pid, q = T.sqlLiteral(ws);
  T.psql("SELECT aegis.publish_checklist_item_update(" + q + ", 0, 'Intake', 'in_progress')");
  T.psql("SELECT aegis.publish_artifact_generated(" + q + ", 'a-1', 'notes.txt', 'other')");
  T.psql("SELECT aegis.publish_data_table_update(" + q + ", 0, '[\"A\", \"B\"]', '[{\"A\": 1}]', 1)");
  T.psql("SELECT aegis.publish_form_field_update(" + q + ", 0, 'flag', 'true', 0.5)");
  T.psql("SELECT aegis.publish_validation_result(" + q + ", 0, 'check', true, 'critical')");
  T.psql("SELECT aegis.publish_spatial_update(" + q + ", 0, '{\"type\": \"FeatureCollection\", \"features\": [" +
    "{\"type\": \"Feature\", \"properties\": null, \"geometry\": {\"type\": \"Point\", \"coordinates\": [-102.1, 31.9]}}]}')");
  T.psql("SELECT aegis.publish_agent_status(" + q + ", 'waiting')");
  T.psql("SELECT aegis.publish_assessment_complete(" + q + ", 1, 0)");
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(BASE + "/?checklist=" + ws + "&conversations=");
  const done = await T.waitFor("the minimal assessment's summary card", () =>
    page.evaluate(() => document.getElementById("summary").dataset.complete === "true"), 20000).catch(() => false);
  const shown = await page.evaluate(() => ({
    items: document.querySelectorAll("#checklist li").length, artifacts: document.querySelectorAll("#artifacts li").length,
    cells: document.querySelectorAll("table td").length, fields: document.querySelectorAll("#form .field.conf-low").length,
    checks: document.querySelectorAll("#validations li.sev-critical").length, points: document.querySelectorAll("#map circle").length,
    status: document.getElementById("agent-status").textContent, failed: document.getElementById("sum-failed").textContent,
    streams: document.querySelectorAll(".conn").length }));
  T.check("dashboard: events with only their required fields render in every component, without page errors",
    done && errors.length === 0 && shown.items === 1 && shown.artifacts === 1 && shown.cells === 2 && shown.fields === 1 &&
    shown.checks === 1 && shown.points === 1 && shown.status === "waiting" && shown.failed === "\u2013" &&
    shown.streams === 1 /* conversations= (empty): none opened */,
    JSON.stringify({ done, errors, shown }));
  await page.close();
}

async function run() {
  const bridge = new T.Bridge(process.env.AEGIS_BRIDGE_BIN,
    ["--listen", "127.0.0.1:" + PORT, "--static-dir", process.env.AEGIS_PAGES_DIR, "--heartbeat-seconds", "1"],
    path.join(OUT, "bridge.log"), path.join(OUT, "bridge.pids"));
  await bridge.start(BASE);
  const browser = await T.launchBrowser();
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => T.diag("page error: " + e.message));
    await page.goto(BASE + "/static/sse-probe.html?workspace=" + WS + "&conversation=" + CONV);
    await T.waitFor("both EventSources open", () =>
      page.evaluate(() => window.probe.opens.workspace >= 1 && window.probe.opens.conversation >= 1), 20000);
    T.ok("page opened EventSource on /workspaces/" + WS + "/stream and /conversations/" + CONV + "/stream");
    const dash = await browser.newPage();
    dash.on("pageerror", (e) => T.diag("dashboard error: " + e.message));
    await dash.goto(BASE + "/?checklist=" + WS + "&conversations=" + CONV);
    await waitBadge(dash, "workspace", "live");
    await waitBadge(dash, "conversation", "live");
    T.ok("dashboard shows both streams live");

    publishPhase(SEED_WORKSPACE, SEED_CONVERSATION);
    await waitReceived(page, "workspace", SEED_WORKSPACE.length, "the seed's workspace examples");
    await waitReceived(page, "conversation", SEED_CONVERSATION.length, "the first node_end events");
    T.ok("live events arrive before the restart");

    await bridge.stop("SIGKILL");
    publishPhase(DOWN_WORKSPACE, DOWN_CONVERSATION);          /* published while the bridge is dead */
    await T.waitFor("the page to notice the dead bridge", () =>
      page.evaluate(() => window.probe.errors.workspace.length > 0 && window.probe.errors.conversation.length > 0), 20000);
    await waitBadge(dash, "workspace", "reconnecting").then(() => T.ok("dashboard shows 'reconnecting' while the bridge is down"),
      (e) => T.notOk("dashboard shows 'reconnecting' while the bridge is down", e.message));
    await bridge.start(BASE);
    await T.waitFor("EventSource to reconnect by itself", () =>
      page.evaluate(() => window.probe.opens.workspace >= 2 && window.probe.opens.conversation >= 2), 30000);
    T.ok("EventSource reconnected by itself after the bridge was killed and restarted");
    publishPhase(AFTER_WORKSPACE, AFTER_CONVERSATION);

    const wsWant = SEED_WORKSPACE.concat(DOWN_WORKSPACE, AFTER_WORKSPACE);
    const convWant = SEED_CONVERSATION.concat(DOWN_CONVERSATION, AFTER_CONVERSATION);
    await waitReceived(page, "workspace", wsWant.length, "every workspace event");
    await waitReceived(page, "conversation", convWant.length, "every conversation event");
    await T.waitFor("the conversation EventSource to be CLOSED (stream ended, reconnect answered 204)",
      () => page.evaluate(() => window.probe.readyState("conversation") === 2), 20000)
      .then(() => T.ok("conversation stream ended after done; EventSource closed"),
            (e) => T.notOk("conversation stream ended after done; EventSource closed", e.message));
    const opensAtEnd = await page.evaluate(() => window.probe.opens.conversation);
    await T.sleep(4000);   /* longer than retry: 3000 — a reconnect would show now */
    const after = await page.evaluate(() => ({ opens: window.probe.opens.conversation,
      state: window.probe.readyState("conversation"), ws: window.probe.readyState("workspace") }));
    T.check("conversation EventSource does not reconnect after done", after.opens === opensAtEnd && after.state === 2,
      JSON.stringify(after));
    T.check("workspace EventSource stays open", after.ws === 1, "readyState " + after.ws);

    const doneId = (await received(page, "conversation")).slice(-1)[0].id;
    T.check("reconnect to the finished conversation gets 204",
      (await T.httpStatus(BASE + "/conversations/" + CONV + "/stream", { "Last-Event-ID": doneId })) === 204);

    checkStream("workspace", await received(page, "workspace"), wsWant, "workspace", WS, (d) => d);
    checkStream("conversation", await received(page, "conversation"), convWant, "conversation", CONV,
      conversationShape);
    T.check("seed examples arrive verbatim (incl. event_type)", util.isDeepStrictEqual(
      (await received(page, "workspace")).slice(0, 4).map((e) => e.data), SEED_WORKSPACE));
    await checkDashboard(dash, wsWant.length, convWant.length);
    await page.screenshot({ path: path.join(OUT, "sse-probe.png"), fullPage: true });
    await dash.screenshot({ path: path.join(OUT, "dashboard-after-restart.png"), fullPage: true });
    fs.writeFileSync(path.join(OUT, "events.json"), JSON.stringify(await page.evaluate(() => window.probe.events), null, 1));
    await checkMinimalPayloads(browser);
  } finally {
    await browser.close();
    await bridge.stop("SIGTERM");
  }
}

run().catch((e) => { T.notOk("browser SSE scenario ran to the end", e.stack || String(e)); })
  .finally(() => T.finish("sse-restart"));
