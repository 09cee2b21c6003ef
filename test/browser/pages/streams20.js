// streams20.js: the script of streams20.html (a file, not inline: the bridge's
// Content-Security-Policy allows scripts from the bridge only).
"use strict";
window.probe = { streams: {}, order: [] };

function watch(label, url, names) {
  var es = new EventSource(url), st = { url: url, opens: 0, errors: 0, events: [], es: es };
  window.probe.streams[label] = st;
  window.probe.order.push(label);
  es.addEventListener("open", function () { st.opens += 1; });
  es.addEventListener("error", function () { st.errors += 1; });
  names.concat(["message"]).forEach(function (name) {
    es.addEventListener(name, function (ev) {
      if (ev instanceof MessageEvent) st.events.push({ id: ev.lastEventId, type: ev.type, data: ev.data });
    });
  });
}

window.probe.summary = function () {
  return window.probe.order.map(function (label) {
    var st = window.probe.streams[label];
    return { label: label, opens: st.opens, errors: st.errors, readyState: st.es.readyState,
             ids: st.events.map(function (e) { return e.id; }),
             types: st.events.map(function (e) { return e.type; }) };
  });
};

var q = new URLSearchParams(location.search);
if (q.get("workspace")) {
  watch("workspace", "/workspaces/" + encodeURIComponent(q.get("workspace")) + "/stream",
    ["checklist_item_update", "agent_status"]);
}
(q.get("conversations") || "").split(",").filter(Boolean).forEach(function (c) {
  watch("conversation " + c, "/conversations/" + encodeURIComponent(c) + "/stream", ["node_end", "done", "error"]);
});
document.getElementById("out").textContent = window.probe.order.length + " streams opened";
