#!/usr/bin/env python3
"""test/sse/sse_client.py: a small raw-socket SSE client for the bridge tests.

Owns nothing but its sockets.  Modes (each prints one JSON object):
  get URL [-H 'Name: value']... [--events N] [--timeout S] [--stamp]
      [--rcvbuf B] [--pause S]
      one request; status, headers, parsed events, comments, retry, id-only
      messages, whether the server closed the stream.  --rcvbuf sets a small
      socket receive buffer, --pause stops reading for S seconds after the
      response head (a slow client the server must wait for).
  resume URL --expect N --chunk K [--timeout S]
      reads K events, disconnects, reconnects with Last-Event-ID, until N
      events arrived; prints every id received (to check no gap, no duplicate).
  many URL_TEMPLATE --streams S --clients C --events N --ready FILE [--timeout S]
      C connections spread over S streams ({} in the template is the stream
      number); writes FILE once all got their headers; waits until every
      client has N events; prints per-stream id lists and failures.
  stall URL --ready FILE --hold S
      connects with a tiny receive buffer, reads the headers, then stops
      reading for S seconds (or until FILE.go exists); then reads what is left
      and reports whether the server had closed the connection.
Bounded: every mode has a timeout; no retries beyond --expect.
"""
import argparse
import asyncio
import json
import os
import socket
import sys
import time
from urllib.parse import urlsplit


def parse_url(url):
    u = urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    return u.hostname, u.port or 80, path


def request_bytes(host, port, path, headers):
    lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port),
             "Accept: text/event-stream"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class SSEParser:
    """Incremental text/event-stream parser (WHATWG rules, enough for tests)."""

    def __init__(self):
        self.buf = b""
        self.events, self.comments, self.id_only = [], 0, []
        self.retry = None
        self._reset()

    def _reset(self):
        self.cur_id, self.cur_event, self.cur_data, self.has_data = None, None, [], False

    def feed(self, data):
        lines = (self.buf + data).split(b"\n")
        self.buf = lines.pop()          # an unfinished line stays buffered
        for line in lines:
            self._line(line.rstrip(b"\r").decode("utf-8"))

    def _line(self, line):
        if line == "":
            if self.has_data:
                self.events.append({"id": self.cur_id, "event": self.cur_event or "message",
                                    "data": "\n".join(self.cur_data)})
            elif self.cur_id is not None:
                self.id_only.append(self.cur_id)
            self._reset()
            return
        if line.startswith(":"):
            self.comments += 1
            return
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "id":
            self.cur_id = value
        elif field == "event":
            self.cur_event = value
        elif field == "data":
            self.cur_data.append(value)
            self.has_data = True
        elif field == "retry":
            self.retry = int(value)


def split_head(raw):
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for h in lines[1:]:
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


class Head:
    """Collects the response head; feed() returns body bytes once it is complete."""

    def __init__(self):
        self.raw, self.status, self.headers = b"", None, {}

    def feed(self, chunk):
        if self.status is not None:
            return chunk
        self.raw += chunk
        if b"\r\n\r\n" not in self.raw:
            return None
        self.status, self.headers, body = split_head(self.raw)
        return body


def recv_before(s, deadline):
    """One recv before the deadline: bytes, b"" when the server closed, None on timeout."""
    s.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        return s.recv(65536)
    except socket.timeout:
        return None


def mode_get(a):
    host, port, path = parse_url(a.url)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if a.rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    s.settimeout(a.timeout)
    s.connect((host, port))
    s.sendall(request_bytes(host, port, path, a.H))
    deadline = time.monotonic() + a.timeout
    head, closed, p = Head(), False, SSEParser()
    paused = a.pause <= 0
    while time.monotonic() < deadline:
        chunk = recv_before(s, deadline)
        if chunk is None:
            break
        if not chunk:
            closed = True
            break
        was_open = head.status is None
        chunk = head.feed(chunk)
        if chunk is None:
            continue
        if was_open and (head.headers.get("content-length") == "0" or head.status != 200):
            closed = True
            break
        if not paused:
            time.sleep(a.pause)
            paused = True
        p.feed(chunk)
        if a.stamp:
            now = time.time()
            for ev in p.events:
                ev.setdefault("t", now)
        if a.events is not None and len(p.events) >= a.events:
            break
    s.close()
    print(json.dumps({"status": head.status, "headers": head.headers, "events": p.events,
                      "comments": p.comments, "retry": p.retry, "id_only": p.id_only,
                      "closed": closed}))


def mode_resume(a):
    host, port, path = parse_url(a.url)
    deadline = time.monotonic() + a.timeout
    ids, last, connects = [], None, 0
    while len(ids) < a.expect and time.monotonic() < deadline:
        hdrs = ["Last-Event-ID: %s" % last] if last is not None else []
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(request_bytes(host, port, path, hdrs))
        connects += 1
        head, p, got = Head(), SSEParser(), 0
        while got < a.chunk and len(ids) < a.expect and time.monotonic() < deadline:
            chunk = recv_before(s, deadline)
            if not chunk:
                break
            chunk = head.feed(chunk)
            if chunk is None:
                continue
            p.feed(chunk)
            while p.events and got < a.chunk:
                ev = p.events.pop(0)
                ids.append(int(ev["id"]))
                last = ev["id"]
                got += 1
        s.close()
    print(json.dumps({"ids": ids, "connects": connects}))


async def many_client(host, port, path, want, box, ready_evt, ready_counter, total, ready_file):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        box["error"] = "connect: %s" % e
        ready_counter[0] += 1
        return
    writer.write(request_bytes(host, port, path, []))
    head, p = Head(), SSEParser()
    try:
        while len(p.events) < want:
            chunk = await reader.read(65536)
            if not chunk:
                box["error"] = "closed after %d events" % len(p.events)
                break
            was_open = head.status is None
            chunk = head.feed(chunk)
            if chunk is None:
                continue
            if was_open:
                ready_counter[0] += 1
                if ready_counter[0] == total:
                    with open(ready_file, "w") as f:
                        f.write("ready\n")
            p.feed(chunk)
    finally:
        box["ids"] = [int(e["id"]) for e in p.events]
        box["status"] = head.status
        writer.close()


async def many_main(a):
    host, port, path = parse_url(a.url)
    boxes, tasks, counter = [], [], [0]
    for i in range(a.clients):
        stream = i % a.streams
        box = {"stream": stream}
        boxes.append(box)
        tasks.append(asyncio.create_task(many_client(host, port, path.replace("%7B%7D", str(stream)).replace("{}", str(stream)),
                                                     a.events, box, None, counter, a.clients,
                                                     a.ready)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    done, pending = await asyncio.wait(tasks, timeout=a.timeout)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    per_stream = {}
    bad = []
    for i, b in enumerate(boxes):
        ids = b.get("ids", [])
        first = per_stream.setdefault(b["stream"], ids)
        if len(ids) != a.events or ids != first or b.get("error"):
            bad.append({"client": i, "stream": b["stream"], "got": len(ids),
                        "error": b.get("error"), "status": b.get("status")})
    print(json.dumps({"clients": a.clients, "complete": a.clients - len(bad),
                      "bad": bad[:20], "streams": {str(k): v for k, v in per_stream.items()}}))


def mode_stall(a):
    host, port, path = parse_url(a.url)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((host, port))
    s.sendall(request_bytes(host, port, path, []))
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += s.recv(1)        # only the head; the body stays unread
    with open(a.ready, "w") as f:
        f.write("ready\n")
    end = time.monotonic() + a.hold
    while time.monotonic() < end and not os.path.exists(a.ready + ".go"):
        time.sleep(0.1)
    s.settimeout(10)
    total, closed, reset = 0, False, False
    stop = time.monotonic() + 15
    try:
        while time.monotonic() < stop:
            chunk = s.recv(1 << 20)
            if not chunk:
                closed = True
                break
            total += len(chunk)
    except ConnectionResetError:
        closed = reset = True
    except socket.timeout:
        pass
    s.close()
    print(json.dumps({"closed": closed, "reset": reset, "bytes_after_stall": total}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    g = sub.add_parser("get")
    g.add_argument("url")
    g.add_argument("-H", action="append", default=[])
    g.add_argument("--events", type=int)
    g.add_argument("--timeout", type=float, default=5)
    g.add_argument("--stamp", action="store_true", help="add the receive time (epoch s) to each event")
    g.add_argument("--rcvbuf", type=int, default=0, help="socket receive buffer size (bytes)")
    g.add_argument("--pause", type=float, default=0, help="stop reading for S s after the head")
    r = sub.add_parser("resume")
    r.add_argument("url")
    r.add_argument("--expect", type=int, required=True)
    r.add_argument("--chunk", type=int, required=True)
    r.add_argument("--timeout", type=float, default=60)
    m = sub.add_parser("many")
    m.add_argument("url")
    m.add_argument("--streams", type=int, required=True)
    m.add_argument("--clients", type=int, required=True)
    m.add_argument("--events", type=int, required=True)
    m.add_argument("--ready", required=True)
    m.add_argument("--timeout", type=float, default=120)
    st = sub.add_parser("stall")
    st.add_argument("url")
    st.add_argument("--ready", required=True)
    st.add_argument("--hold", type=float, default=60)
    a = ap.parse_args()
    if a.mode == "get":
        mode_get(a)
    elif a.mode == "resume":
        mode_resume(a)
    elif a.mode == "many":
        asyncio.run(many_main(a))
    else:
        mode_stall(a)


if __name__ == "__main__":
    sys.exit(main())
