/*
 * dashboard.js: renders the workspace and conversation events.
 * Owns: reading the page's query (which streams to open), one renderer per
 * workspace event type (the seed's UI column), and the conversation view
 * (each node as it ends, assistant messages, the final summary or error).
 * Renderers only build DOM from the event's fields, as text, never as HTML.
 */
(function () {
  "use strict";

  var WORKSPACE_EVENTS = ["checklist_item_update", "artifact_generated", "data_table_update",
    "form_field_update", "validation_result", "spatial_update", "agent_status",
    "assessment_complete"];
  var CONVERSATION_EVENTS = ["node_end", "done", "error"];
  var STATUS_ICONS = { pending: "\u25CB", in_progress: "\u25D4", complete: "\u2714",
    failed: "\u2716", skipped: "\u21B7", needs_review: "\u26A0" };
  var SEVERITY_ORDER = { critical: 0, error: 1, warning: 2, info: 3 };

  function $(id) { return document.getElementById(id); }

  /* make(tag, className, text): an element with text content */
  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /* keyed(list, key, tag): the child of list with data-key=key, created in
   * order of key (numeric keys sort numerically) if missing */
  function keyed(list, key, tag) {
    var found = null, before = null;
    Array.prototype.forEach.call(list.children, function (c) {
      if (c.dataset.key === String(key)) found = c;
      else if (!before && typeof key === "number" && Number(c.dataset.key) > key) before = c;
    });
    if (found) return found;
    var node = make(tag);
    node.dataset.key = String(key);
    list.insertBefore(node, before);
    return node;
  }

  function formatBytes(n) {
    if (n == null) return "";
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
    return (n / 1048576).toFixed(1) + " MiB";
  }

  function formatMs(ms) {
    if (ms == null) return "\u2013";
    var s = Math.round(ms / 1000);
    return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
  }

  /* ---- workspace renderers, one per event type ---- */

  function renderChecklistItem(ev) {
    var li = keyed($("checklist"), ev.item_index, "li");
    li.className = "item status-" + ev.status;
    li.dataset.status = ev.status;
    li.textContent = "";
    li.appendChild(make("span", "icon", STATUS_ICONS[ev.status] || "?")).title = ev.status;
    var body = li.appendChild(make("div", "item-body"));
    body.appendChild(make("span", "item-name", ev.item_name));
    body.appendChild(make("span", "item-status", ev.status.replace("_", " ")));
    if (ev.summary) body.appendChild(make("div", "item-summary muted", ev.summary));
    if (ev.completed_by) body.appendChild(make("div", "item-by muted", "by " + ev.completed_by));
  }

  function renderArtifact(ev) {
    var li = keyed($("artifacts"), ev.artifact_id, "li");
    li.className = "artifact type-" + ev.artifact_type;
    li.textContent = "";
    var name = ev.url ? make("a", "artifact-name", ev.name) : make("span", "artifact-name", ev.name);
    if (ev.url) { name.href = ev.url; name.setAttribute("download", ""); }
    li.appendChild(name);
    var meta = [ev.artifact_type, ev.mime_type, formatBytes(ev.size_bytes)]
      .filter(function (x) { return x; }).join(" \u00B7 ");
    li.appendChild(make("div", "muted", meta));
  }

  function renderDataTable(ev) {
    var box = keyed($("tables"), ev.item_index, "div");
    box.className = "table-box";
    box.textContent = "";
    var table = box.appendChild(make("table", "data-table"));
    table.dataset.item = ev.item_index;
    var head = table.appendChild(make("thead")).appendChild(make("tr"));
    ev.columns.forEach(function (c) { head.appendChild(make("th", null, c)); });
    var body = table.appendChild(make("tbody"));
    ev.rows.forEach(function (row) {
      var tr = body.appendChild(make("tr"));
      ev.columns.forEach(function (c) {
        var v = row[c];
        tr.appendChild(make("td", typeof v === "number" ? "num" : null,
          v == null ? "" : (typeof v === "number" ? v.toLocaleString("en-US") : v)));
      });
    });
    box.appendChild(make("div", "muted table-count",
      "item " + ev.item_index + ": showing " + ev.rows.length + " of " + ev.total_rows + " rows"));
  }

  function confidenceClass(c) {
    if (c >= 0.9) return "conf-high";
    if (c >= 0.7) return "conf-medium";
    return "conf-low";
  }

  function renderFormField(ev) {
    var row = keyed($("form"), ev.field_name, "div");
    row.className = "field " + confidenceClass(ev.confidence);
    row.dataset.confidence = String(ev.confidence);
    row.textContent = "";
    row.appendChild(make("dt", null, ev.field_name));
    var dd = row.appendChild(make("dd"));
    dd.appendChild(make("span", "field-value", ev.field_value === null ? "\u2014" : ev.field_value));
    dd.appendChild(make("span", "confidence", Math.round(ev.confidence * 100) + " %"));
    if (ev.source) dd.appendChild(make("div", "muted field-source", ev.source));
  }

  function renderValidation(ev) {
    var list = $("validations");
    var li = keyed(list, ev.item_index + ":" + ev.check_name, "li");
    li.className = "validation sev-" + ev.severity + (ev.passed ? " passed" : " failed");
    li.dataset.severity = ev.severity;
    li.dataset.passed = String(ev.passed);
    li.textContent = "";
    li.appendChild(make("span", "icon", ev.passed ? "\u2714" : "\u2716"));
    li.appendChild(make("span", "badge sev", ev.severity));
    li.appendChild(make("span", "check-name", ev.check_name));
    if (ev.message) li.appendChild(make("div", "muted check-message", ev.message));
    /* failed first, then by severity */
    Array.prototype.slice.call(list.children).sort(function (a, b) {
      var fa = a.dataset.passed === "true", fb = b.dataset.passed === "true";
      if (fa !== fb) return fa ? 1 : -1;
      return SEVERITY_ORDER[a.dataset.severity] - SEVERITY_ORDER[b.dataset.severity];
    }).forEach(function (c) { list.appendChild(c); });
  }

  function renderAgentStatus(ev) {
    var box = $("progress");
    box.dataset.status = ev.status;
    $("agent-status").textContent = ev.status;
    $("agent-status").className = "badge agent-" + ev.status;
    if (ev.agent) $("agent-name").textContent = ev.agent;
    if (typeof ev.progress === "number") {
      $("progress-fill").style.width = Math.round(ev.progress * 100) + "%";
      box.dataset.progress = String(ev.progress);
    }
    $("agent-message").textContent = ev.message || "";
  }

  function renderSummary(ev) {
    var card = $("summary");
    card.hidden = false;
    card.dataset.complete = "true";
    $("sum-items").textContent = ev.completed_items + " / " + ev.total_items;
    $("sum-passed").textContent = ev.passed_checks == null ? "\u2013" : ev.passed_checks;
    $("sum-failed").textContent = ev.failed_checks == null ? "\u2013" : ev.failed_checks;
    $("sum-duration").textContent = formatMs(ev.duration_ms);
    $("sum-text").textContent = ev.summary || "";
  }

  var WORKSPACE_RENDERERS = {
    checklist_item_update: renderChecklistItem,
    artifact_generated: renderArtifact,
    data_table_update: renderDataTable,
    form_field_update: renderFormField,
    validation_result: renderValidation,
    spatial_update: function (ev) { window.aegisMap.add(ev); },
    agent_status: renderAgentStatus,
    assessment_complete: renderSummary
  };

  /* ---- conversation view ---- */

  function conversationBox(id) {
    var box = keyed($("conversations"), id, "div");
    if (!box.firstChild) {
      box.className = "conversation";
      box.appendChild(make("h3", "mono", id));
      box.appendChild(make("ol", "nodes"));
      box.appendChild(make("div", "chat"));
      box.appendChild(make("div", "outcome"));
    }
    return box;
  }

  function renderNodeEnd(box, ev) {
    var d = ev.data || {};
    var li = box.querySelector(".nodes").appendChild(make("li", "node status-" + d.status));
    li.dataset.node = ev.node;
    li.appendChild(make("span", "node-name", ev.node));
    li.appendChild(make("span", "muted", d.status + (d.tokens_used ? " \u00B7 " + d.tokens_used + " tokens" : "")));
    if (d.skills_injected && d.skills_injected.length)
      li.appendChild(make("div", "skills", "skills: " + d.skills_injected.join(", ")));
    if (d.message && d.message.content) {
      var bubble = box.querySelector(".chat").appendChild(make("div", "msg role-" + d.message.role));
      bubble.appendChild(make("span", "msg-role", d.message.role + " \u00B7 " + ev.node));
      bubble.appendChild(make("p", null, d.message.content));
    }
  }

  function renderDone(box, ev) {
    var d = ev.data || {}, out = box.querySelector(".outcome");
    out.className = "outcome done";
    out.textContent = "";
    out.appendChild(make("strong", null, "Done: " + d.status));
    var facts = ["execution " + d.execution_id];
    if (d.tokens_used != null) facts.push(d.tokens_used.toLocaleString("en-US") + " tokens");
    if (d.cost_usd != null) facts.push("$" + Number(d.cost_usd).toFixed(3));
    out.appendChild(make("div", null, facts.join(" \u00B7 ")));
    if (d.skills_injected && d.skills_injected.length)
      out.appendChild(make("div", "skills", "skills: " + d.skills_injected.join(", ")));
  }

  function renderError(box, ev) {
    var out = box.querySelector(".outcome");
    out.className = "outcome error";
    out.textContent = "";
    out.appendChild(make("strong", null, "Error"));
    out.appendChild(make("div", null, (ev.data && ev.data.error) || "unknown error"));
  }

  /* the bridge refused the stream with an error status (a conversation that
   * finished before the page opened is replayed, so it never lands here) */
  function renderRefused(box, stream) {
    if (stream.count > 0) return;
    var out = box.querySelector(".outcome");
    out.className = "outcome refused muted";
    out.textContent = "The bridge refused this conversation's stream (see the browser console for the status).";
  }

  /* ---- wiring ---- */

  function params() {
    var q = new URLSearchParams(window.location.search);
    var key = q.has("conversations") ? "conversations" : "conversation";
    var convs = (q.has(key) ? q.get(key) : "conv-demo-1,conv-demo-2")
      .split(",").map(function (s) { return s.trim(); }).filter(function (s) { return s; });
    return { checklist: q.get("checklist") || "chk-demo", conversations: convs,
             message: q.get("message"), agent_id: q.get("agent_id"), agent_type: q.get("agent_type") };
  }

  function conversationUrl(id, p) {
    var url = "conversations/" + encodeURIComponent(id) + "/stream";
    var q = new URLSearchParams();
    ["message", "agent_id", "agent_type"].forEach(function (k) { if (p[k]) q.set(k, p[k]); });
    return q.toString() ? url + "?" + q.toString() : url;
  }

  /* ids as the bridge accepts them in a stream URL */
  var ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

  function pageError(text) {
    var box = $("page-errors");
    box.hidden = false;
    box.appendChild(make("div", null, text));
  }

  /* valid(kind, id): true, or shows why the id is refused and returns false */
  function valid(kind, id) {
    if (ID_RE.test(id)) return true;
    pageError("Bad " + kind + " id '" + (id.length > 60 ? id.slice(0, 60) + "\u2026" : id) +
      "' in the page address: use 1 to 128 of A-Z a-z 0-9 _ . : - (not opened)");
    return false;
  }

  /* the message box: each question is a new conversation whose stream asks
   * the agent (the run request), shown like the others, newest first */
  function wireAsk(p) {
    $("ask").addEventListener("submit", function (e) {
      var text = $("ask-message").value.trim(), id, box, bubble;
      e.preventDefault();
      if (!text) return;
      id = "conv-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8);
      box = conversationBox(id);
      $("conversations").insertBefore(box, $("conversations").firstChild);
      bubble = box.querySelector(".chat").appendChild(make("div", "msg role-user"));
      bubble.appendChild(make("span", "msg-role", "user"));
      bubble.appendChild(make("p", null, text));
      openConversation(id, { message: text, agent_id: p.agent_id, agent_type: p.agent_type || "rule_37" });
      $("ask-message").value = "";
    });
  }

  function start() {
    var p = params();
    wireAsk(p);
    $("checklist-id").textContent = p.checklist;
    if (valid("checklist", p.checklist)) openWorkspace(p);
    p.conversations.filter(function (id) { return valid("conversation", id); })
      .forEach(function (id) { openConversation(id, p); });
  }

  /* the workspace view as before any event (after a retention reset) */
  function clearWorkspace() {
    ["checklist", "validations", "tables", "form", "artifacts"].forEach(function (id) {
      $(id).textContent = "";
    });
    delete $("progress").dataset.status;
    delete $("progress").dataset.progress;
    $("agent-status").textContent = "waiting for events";
    $("agent-status").className = "badge";
    $("progress-fill").style.width = "0%";
    $("agent-message").textContent = "";
    $("summary").hidden = true;
    delete $("summary").dataset.complete;
    window.aegisMap.clear();
  }

  function openWorkspace(p) {
    var stream = window.aegisStreams.open("workspace " + p.checklist,
      "workspaces/" + encodeURIComponent(p.checklist) + "/stream", WORKSPACE_EVENTS,
      function (type, data) { WORKSPACE_RENDERERS[type](data); });
    stream.onreset = clearWorkspace;
  }

  function openConversation(id, p) {
    var box = conversationBox(id), stream;
    stream = window.aegisStreams.open("conversation " + id, conversationUrl(id, p), CONVERSATION_EVENTS,
      function (type, data) {
        if (type === "node_end") renderNodeEnd(box, data);
        else if (type === "done") { renderDone(box, data); window.aegisStreams.markFinished(stream); }
        else { renderError(box, data); window.aegisStreams.markFinished(stream); }
      });
    stream.onclosed = function (st) { renderRefused(box, st); };
    /* retention removed part of what the box shows: rebuild it from what follows */
    stream.onreset = function () { box.textContent = ""; conversationBox(id); };
  }

  document.addEventListener("DOMContentLoaded", start);
})();
