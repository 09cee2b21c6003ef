/*
 * streams.js: one EventSource per stream and its connection state.
 * Owns: opening a stream, listening for its named events, showing the state
 * (connecting / live / reconnecting / ended) as a badge, the bridge's
 * `reset` (passed to the stream's onreset), resuming after a lost
 * connection, and a log of every event received (window.aegisStreams.log)
 * that tests and curious users read.
 * Resuming is done here, not by EventSource: its own reconnect sends the
 * id in a Last-Event-ID header, which the bridge never sees over a direct
 * HTTP/2 connection (libwebsockets 4.1.6 drops headers it has no name for
 * on HTTP/2 streams; docs/deploy.md). So on a connection error the page
 * closes the EventSource and opens a new one with ?last_event_id=<the last
 * id it saw>, after a backoff (1 s doubling to 30 s, reset once live): the
 * same resume over HTTP/1.1, HTTP/2 and through a proxy.
 * Closing: lws 4.1.6 does not tell the bridge when a client resets an
 * HTTP/2 stream either, so each connection carries a random ?stream_key=
 * and whenever the page closes an EventSource (stream.close(), before a
 * reopen, on leaving the page) it POSTs streams/<key>/close (a beacon), which
 * ends that stream on the bridge at once.
 */
(function () {
  "use strict";

  var log = [];
  var all = [];

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

  var BACKOFF_MIN_MS = 1000, BACKOFF_MAX_MS = 30000;

  /* a new random stream key: 32 hex digits */
  function newKey() {
    var b = new Uint8Array(16), s = "", i;
    window.crypto.getRandomValues(b);
    for (i = 0; i < b.length; i++) s += ("0" + b[i].toString(16)).slice(-2);
    return s;
  }

  /* the stream's URL with key, resuming after stream.lastId once it has one */
  function resumeUrl(stream, key) {
    var u = new URL(stream.url, document.baseURI);
    u.searchParams.set("stream_key", key);
    if (stream.lastId !== null) u.searchParams.set("last_event_id", stream.lastId);
    return u.href;
  }

  /* tells the bridge the page closed the stream opened with key (a 404 when
   * it knew already, a failed beacon when it is down: both fine) */
  function release(stream, key) {
    var u = new URL("../../streams/" + key + "/close", new URL(stream.url, document.baseURI)).href;
    if (navigator.sendBeacon) navigator.sendBeacon(u, "close");
    else fetch(u, { method: "POST", body: "close", keepalive: true }).catch(function () { });
  }

  /* the next wait before reopening: doubling from BACKOFF_MIN_MS, with jitter */
  function nextDelay(stream) {
    var d = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, stream.attempt));
    stream.attempt += 1;
    return Math.round(d * (0.8 + 0.4 * Math.random()));
  }

  /* EventSource's error event: CONNECTING means the connection was lost (or
   * could not be made): close it and reopen after a backoff, from the last
   * id seen. CLOSED means the server refused the stream (an error status, or
   * 204 when reopened after a conversation's done/error). A finished
   * conversation shows "ended" either way. A refusal is asked about once
   * (session.js): 401/403 shows "not authorized", not a silent spinner. */
  function onError(stream) {
    if (stream.stopped) return;
    if (stream.source.readyState === EventSource.CLOSED) {
      if (stream.finished) {
        setState(stream, "ended");
        return;
      }
      setState(stream, "closed");
      if (!window.aegisSession) {
        if (stream.onclosed) stream.onclosed(stream);
        return;
      }
      var probeKey = newKey();
      window.aegisSession.refusal(resumeUrl(stream, probeKey)).then(function (status) {
        release(stream, probeKey);   /* in case it opened */
        stream.status = status;
        if (status === 401 || status === 403) {
          setState(stream, "unauthorized");
          stream.badge.textContent = stream.label + ": not authorized";
        }
        if (stream.onclosed) stream.onclosed(stream);
      });
      return;
    }
    stream.source.close();
    release(stream, stream.key);
    stream.reconnects += 1;
    setState(stream, stream.finished ? "ended" : "reconnecting");
    clearTimeout(stream.timer);
    stream.timer = setTimeout(function () { connect(stream); }, nextDelay(stream));
  }

  function onEvent(stream, handler, ev) {
    var data;
    if (!(ev instanceof MessageEvent)) return;   /* a connection error, see open() */
    if (ev.lastEventId) stream.lastId = ev.lastEventId;   /* resumed after, even if unreadable */
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
    if (ev.lastEventId) stream.lastId = ev.lastEventId;
    log.push({ stream: stream.label, id: ev.lastEventId, type: "reset", data: data });
    if (stream.onreset) stream.onreset(data);
  }

  /* (re)opens stream.source under a new key, with every listener */
  function connect(stream) {
    var source;
    stream.key = newKey();
    source = new EventSource(resumeUrl(stream, stream.key));
    stream.source = source;
    /* a (re)connect that opens streams events again: a conversation that
     * ended and got a new run on the reconnect is live, not ended */
    source.addEventListener("open", function () {
      stream.finished = false;
      stream.attempt = 0;
      setState(stream, "live");
    });
    /* "error" is both EventSource's connection-error event and the name of a
     * conversation event (the seed's): a MessageEvent is the latter. */
    source.addEventListener("error", function (ev) {
      if (!(ev instanceof MessageEvent)) onError(stream);
    });
    stream.eventNames.forEach(function (name) {
      source.addEventListener(name, function (ev) { onEvent(stream, stream.handler, ev); });
    });
    source.addEventListener("reset", function (ev) { onReset(stream, ev); });
  }

  /* open(label, url, eventNames, handler): handler(type, data, id) per event;
   * set the returned stream's onclosed to hear when the server refused it
   * (stream.status: the refusal's HTTP status, when session.js could ask);
   * stream.close() ends it for good (no reconnect) */
  function open(label, url, eventNames, handler) {
    var stream = {
      label: label, url: url, state: "connecting", reconnects: 0, count: 0, onclosed: null, status: null,
      resets: 0, onreset: null, lastId: null, attempt: 0, timer: null, stopped: false, key: null,
      eventNames: eventNames, handler: handler,
      finished: false, badge: badgeFor(label), source: null
    };
    stream.close = function () {
      if (stream.stopped) return;
      stream.stopped = true;
      clearTimeout(stream.timer);
      stream.source.close();
      release(stream, stream.key);
      setState(stream, "closed");
    };
    connect(stream);
    all.push(stream);
    return stream;
  }

  /* A stream whose last event has arrived (conversation done/error, live or
   * replayed for a page opened after the run): the server closes it and
   * answers the reconnect with 204; say "ended". */
  function markFinished(stream) {
    stream.finished = true;
  }

  /* leaving the page: over HTTP/2 the connection may stay open for another
   * tab of the same origin, and its streams with it */
  window.addEventListener("pagehide", function () {
    all.forEach(function (stream) {
      if (!stream.stopped && stream.source.readyState !== EventSource.CLOSED) release(stream, stream.key);
    });
  });

  window.aegisStreams = { open: open, markFinished: markFinished, log: log, streams: all };
})();
