#!/usr/bin/env python3
"""test/tools/hostile.py: hostile HTTP clients for the bridge's DoS tests.

Owns nothing but its sockets; loopback only; every mode is bounded in count
and time and prints one JSON object.
  hold --port P --count N --seconds S [--src IP] [--path PATH] [--rcvbuf B]
       [--ready FILE] [--until FILE]
      opens N connections (as fast as it can), sends "GET PATH" on each when
      --path is given, never reads; writes FILE after the attempts; holds
      them S seconds or until the --until file exists; closes them.
  slowloris --port P --drip N --silent M --seconds S [--ready FILE]
      N connections send a request's headers one byte per second (never
      ending them), M connections send nothing; for S seconds; reports how
      many the server closed and after how many seconds; writes FILE once
      all are open, and FILE.open with the count still open every second.
  oversize --port P --kind url|headers|cookie
      one request with a 1 MB URL, 10,000 headers or a 1 MB cookie; prints
      the response's status (0: closed without one).
  resets --port P --path PATH --count N [--read B]
      N times: connect, request PATH, read B bytes of the response (default
      1: mid-replay), then close with a reset (SO_LINGER 0).
"""
import argparse
import errno
import json
import os
import socket
import struct
import sys
import time


def connect(port, src=None, rcvbuf=None, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


HOST = b"127.0.0.1"     # with the port once known: the bridge checks Host (--allowed-hosts)


def request(path, extra=b""):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + HOST + b"\r\n" + extra + b"\r\n"


def peer_closed(s):
    try:
        d = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return d == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def touch(path, text=""):
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def mode_hold(a):
    socks, failed, errs = [], 0, {}
    for _ in range(a.count):
        try:
            s = connect(a.port, a.src, a.rcvbuf, timeout=2.0)
            if a.path:
                s.sendall(request(a.path))
            socks.append(s)
        except OSError as e:
            failed += 1
            errs[errno.errorcode.get(e.errno, str(e))] = errs.get(errno.errorcode.get(e.errno, str(e)), 0) + 1
    touch(a.ready, str(len(socks)))
    end = time.time() + a.seconds
    while time.time() < end and not (a.until and os.path.exists(a.until)):
        time.sleep(0.1)
    closed = sum(1 for s in socks if peer_closed(s))
    for s in socks:
        s.close()
    return {"opened": len(socks), "failed": failed, "errors": errs, "closed_by_server": closed}


def mode_slowloris(a):
    head = request("/workspaces/slow/stream", b"X-Padding: " + b"a" * 4000 + b"\r\n")
    drip, silent = [], []
    for i in range(a.drip + a.silent):
        try:
            s = connect(a.port, timeout=5.0)
        except OSError:
            continue
        s.setblocking(False)
        (drip if i < a.drip else silent).append(s)
    start = time.time()
    touch(a.ready, str(len(drip) + len(silent)))
    closed_at = {}
    step = 0
    while time.time() - start < a.seconds:
        for s in drip:
            if s in closed_at:
                continue
            try:
                if step < len(head):
                    s.send(head[step:step + 1])
            except OSError:
                closed_at[s] = time.time() - start
        for s in drip + silent:
            if s not in closed_at and peer_closed(s):
                closed_at[s] = time.time() - start
        step += 1
        touch((a.ready or "") and a.ready + ".open", str(len(drip) + len(silent) - len(closed_at)))
        time.sleep(max(0.0, start + step - time.time()))
    res = {
        "opened": len(drip) + len(silent),
        "drip_closed": sum(1 for s in drip if s in closed_at),
        "silent_closed": sum(1 for s in silent if s in closed_at),
        "max_closed_after": round(max(closed_at.values()), 1) if closed_at else None,
        "min_closed_after": round(min(closed_at.values()), 1) if closed_at else None,
    }
    for s in drip + silent:
        s.close()
    return res


def mode_oversize(a):
    mb = 1024 * 1024
    if a.kind == "url":
        req = request("/workspaces/x/stream?pad=" + "a" * mb)
    elif a.kind == "headers":
        req = request("/workspaces/x/stream", b"".join(b"X-H%d: v\r\n" % i for i in range(10000)))
    else:
        req = request("/workspaces/x/stream", b"Cookie: c=" + b"a" * mb + b"\r\n")
    s = connect(a.port, timeout=10.0)
    sent = 0
    try:
        while sent < len(req):
            n = s.send(req[sent:sent + 65536])
            sent += n
    except OSError:
        pass                     # the server may close while we still send
    data = b""
    try:
        while b"\r\n" not in data and len(data) < 4096:
            d = s.recv(4096)
            if not d:
                break
            data += d
    except OSError:
        pass
    s.close()
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return {"kind": a.kind, "bytes": len(req), "sent": sent, "status": status, "line": line[:80]}


def mode_resets(a):
    req = request(a.path)
    done, errors = 0, 0
    linger = struct.pack("ii", 1, 0)
    for _ in range(a.count):
        try:
            s = connect(a.port, timeout=5.0)
            s.sendall(req)
            got = 0
            while got < a.read:
                d = s.recv(a.read - got)
                if not d:
                    break
                got += len(d)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.close()
            done += 1
        except OSError:
            errors += 1
    return {"resets": done, "errors": errors}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--count", type=int, required=True)
    h.add_argument("--seconds", type=float, required=True)
    h.add_argument("--src")
    h.add_argument("--path")
    h.add_argument("--rcvbuf", type=int)
    h.add_argument("--ready")
    h.add_argument("--until")
    s = sub.add_parser("slowloris")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--drip", type=int, required=True)
    s.add_argument("--silent", type=int, required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--ready")
    o = sub.add_parser("oversize")
    o.add_argument("--port", type=int, required=True)
    o.add_argument("--kind", choices=["url", "headers", "cookie"], required=True)
    r = sub.add_parser("resets")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--path", required=True)
    r.add_argument("--count", type=int, required=True)
    r.add_argument("--read", type=int, default=1)
    a = p.parse_args()
    global HOST
    HOST = b"127.0.0.1:%d" % a.port
    if getattr(a, "count", 0) > 20000 or getattr(a, "seconds", 0) > 600:
        sys.exit("hostile.py: bounded: at most 20000 connections and 600 s")
    out = {"hold": mode_hold, "slowloris": mode_slowloris, "oversize": mode_oversize,
           "resets": mode_resets}[a.mode](a)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
