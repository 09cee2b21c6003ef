/*
 * streams.js: one EventSource per stream and its connection state.
 * Owns: opening a stream, listening for its named events, showing the state
 * (connecting / live / reconnecting / ended) as a badge, the bridge's
 * `reset` (passed to the stream's onreset), and a log of every
 * event received (window.aegisStreams.log) that tests and curious users read.
 * EventSource does the resuming itself: it reconnects after `retry` ms and
 * sends Last-Event-ID, so the bridge continues where the page left off.
 */
(function () {
  "use strict";

  var log = [];

  function badgeFor(label) {
    var box = document.getElementById("connections");
    var badge = document.createElement("span");
    badge.className = "conn conn-connecting";
    badge.dataset.stream = label;
    badge.textContent = label + ": connecting";
    if (box) box.appendChild(badge);
    return badge;
  }

  function setState(stream, state) {
    stream.state = state;
    stream.badge.className = "conn conn-" + state;
    stream.badge.dataset.state = state;
    stream.badge.textContent = stream.label + ": " + state;
  }

  /* EventSource's error event: CONNECTING means it will retry by itself;
   * CLOSED means the server refused the stream (an error status, or 204 on
   * the reconnect after a conversation's done/error). A finished
   * conversation shows "ended" either way. */
  function onError(stream) {
    if (stream.finished) {
      setState(stream, "ended");
    } else if (stream.source.readyState === EventSource.CLOSED) {
      setState(stream, "closed");
      if (stream.onclosed) stream.onclosed(stream);
    } else {
      stream.reconnects += 1;
      setState(stream, "reconnecting");
    }
  }

  function onEvent(stream, handler, ev) {
    var data;
    if (!(ev instanceof MessageEvent)) return;   /* a connection error, see open() */
    try {
      data = JSON.parse(ev.data);
    } catch (e) {
      console.warn("aegis: event " + ev.type + " id " + ev.lastEventId + " is not JSON", e);
      return;
    }
    stream.count += 1;
    log.push({ stream: stream.label, id: ev.lastEventId, type: ev.type, data: data });
    handler(ev.type, data, ev.lastEventId);
  }

  /* The bridge's `reset`: the page resumed below the stream's retention
   * horizon, so what it shows may lack removed events; the retained events
   * follow from the start.  The stream's onreset clears its view. */
  function onReset(stream, ev) {
    var data = null;
    try { data = JSON.parse(ev.data); } catch (e) { /* shown as null */ }
    stream.resets += 1;
    log.push({ stream: stream.label, id: ev.lastEventId, type: "reset", data: data });
    if (stream.onreset) stream.onreset(data);
  }

  /* open(label, url, eventNames, handler): handler(type, data, id) per event;
   * set the returned stream's onclosed to hear when the server refused it */
  function open(label, url, eventNames, handler) {
    var stream = {
      label: label, url: url, state: "connecting", reconnects: 0, count: 0, onclosed: null,
      resets: 0, onreset: null,
      finished: false, badge: badgeFor(label), source: new EventSource(url)
    };
    /* a (re)connect that opens streams events again: a conversation that
     * ended and got a new run on the reconnect is live, not ended */
    stream.source.addEventListener("open", function () { stream.finished = false; setState(stream, "live"); });
    /* "error" is both EventSource's connection-error event and the name of a
     * conversation event (the seed's): a MessageEvent is the latter. */
    stream.source.addEventListener("error", function (ev) {
      if (!(ev instanceof MessageEvent)) onError(stream);
    });
    eventNames.forEach(function (name) {
      stream.source.addEventListener(name, function (ev) { onEvent(stream, handler, ev); });
    });
    stream.source.addEventListener("reset", function (ev) { onReset(stream, ev); });
    return stream;
  }

  /* A stream whose last event has arrived (conversation done/error, live or
   * replayed for a page opened after the run): the server closes it and
   * answers the reconnect with 204; say "ended". */
  function markFinished(stream) {
    stream.finished = true;
  }

  window.aegisStreams = { open: open, markFinished: markFinished, log: log };
})();
