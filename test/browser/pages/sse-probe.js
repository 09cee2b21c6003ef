/*
 * sse-probe.js: the script of sse-probe.html (a file of its own: the bridge
 * serves pages with a Content-Security-Policy that allows no inline script).
 */
"use strict";
window.probe = { events: [], opens: {}, errors: {}, sources: {} };

function record(label, ev) {
  var data = null, parseError = null;
  try { data = JSON.parse(ev.data); } catch (e) { parseError = String(e); }
  window.probe.events.push({ stream: label, id: ev.lastEventId, type: ev.type, data: data,
                             raw: ev.data, parseError: parseError });
  document.getElementById("out").textContent += label + " " + ev.lastEventId + " " + ev.type + "\n";
}

function watch(label, url, names) {
  var es = new EventSource(url);
  window.probe.sources[label] = es;
  window.probe.opens[label] = 0;
  window.probe.errors[label] = [];
  es.addEventListener("open", function () { window.probe.opens[label] += 1; });
  names.forEach(function (name) {
    es.addEventListener(name, function (ev) {
      if (ev instanceof MessageEvent) record(label, ev);
      else window.probe.errors[label].push({ at: Date.now(), readyState: es.readyState });
    });
  });
  /* unnamed events ("message") are not part of the contract: record them so the test sees them */
  es.addEventListener("message", function (ev) { record(label, ev); });
  if (names.indexOf("error") < 0) {
    es.addEventListener("error", function () {
      window.probe.errors[label].push({ at: Date.now(), readyState: es.readyState });
    });
  }
}

window.probe.readyState = function (label) { return window.probe.sources[label].readyState; };

var q = new URLSearchParams(location.search);
if (q.get("workspace")) {
  watch("workspace", "/workspaces/" + encodeURIComponent(q.get("workspace")) + "/stream",
    ["checklist_item_update", "artifact_generated", "data_table_update", "form_field_update",
     "validation_result", "spatial_update", "agent_status", "assessment_complete"]);
}
if (q.get("conversation")) {
  watch("conversation", "/conversations/" + encodeURIComponent(q.get("conversation")) + "/stream",
    ["node_end", "done", "error"]);
}
