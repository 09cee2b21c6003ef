#!/usr/bin/env python3
"""test/soak/soak_clients.py: the soak test's SSE clients (test/soak/soak.sh).

Owns its sockets and its result file, nothing else.  C client slots, slot i
on workspace stream soak-(i % S + 1), run until the stop file appears:

  a slot runs "lives"; a life starts with a fresh connect (no Last-Event-ID:
  the bridge replays the stream from its start), then disconnects after a
  random hold (0.3..HOLD s) and reconnects with Last-Event-ID = the last id it
  received, again and again; after a connection it ends the life with
  probability 1/8 and the slot starts a new one (a new page load).

When FILE (--stop) appears it holds {stream: last event id}: each slot makes
one last connect (resuming) and reads until it has its stream's last id.
Every life is written to --out as one JSON line: slot, stream, the epoch time
of its first head, every received id with its receive time and connection
number, each connection's [number, head time], connects and errors.  soak_check.py
checks them against the store.  Bounded: --deadline ends everything; every
read has a timeout; loopback only (the URL the caller gives).
"""
import argparse
import asyncio
import json
import os
import random
import sys
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sse"))
from sse_client import Head, SSEParser, request_bytes  # noqa: E402


class Life:
    def __init__(self, slot, stream):
        self.slot, self.stream = slot, stream
        self.ids, self.recv, self.conn = [], [], []
        self.heads, self.connects, self.errors = [], 0, []
        self.final = False

    @property
    def last(self):
        return self.ids[-1] if self.ids else None

    def record(self):
        return {"slot": self.slot, "stream": self.stream, "ids": self.ids,
                "recv": [round(t, 4) for t in self.recv], "conn": self.conn,
                "heads": self.heads, "connects": self.connects,
                "errors": self.errors[:20], "n_errors": len(self.errors), "final": self.final}


async def connection(host, port, life, hold, until_id, deadline):
    """One connection: resume after life.last, read for `hold` seconds (or until
    until_id arrived), then close."""
    path = "/workspaces/soak-%d/stream" % life.stream
    hdrs = ["Last-Event-ID: %d" % life.last] if life.last is not None else []
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, asyncio.TimeoutError) as e:
        life.errors.append("connect: %s" % e)
        return
    life.connects += 1
    cidx = life.connects
    writer.write(request_bytes(host, port, path, hdrs))
    head, p = Head(), SSEParser()
    end = min(time.monotonic() + hold, deadline)
    try:
        while True:
            if until_id is not None and life.last is not None and life.last >= until_id:
                break
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except asyncio.TimeoutError:
                break
            if not chunk:
                if until_id is not None or head.status is None:
                    life.errors.append("closed by server (status %s)" % head.status)
                break
            was_open = head.status is None
            body = head.feed(chunk)
            if body is None:
                continue
            now = time.time()
            if was_open:
                life.heads.append([cidx, round(now, 4)])
                if head.status != 200:
                    life.errors.append("status %s" % head.status)
                    break
            p.feed(body)
            for ev in p.events:
                if ev["id"] is None:   # e.g. `event: reset` (resumed below the retention horizon)
                    life.errors.append("event without id: %s %s" % (ev["event"], ev["data"][:100]))
                    continue
                life.ids.append(int(ev["id"]))
                life.recv.append(now)
                life.conn.append(cidx)
            p.events.clear()
    except (OSError, ValueError) as e:
        life.errors.append("read: %s" % e)
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2)
        except (OSError, asyncio.TimeoutError):
            pass


async def slot_main(a, host, port, slot, out, stop_box, deadline):
    rng = random.Random(a.seed * 100003 + slot)
    stream = slot % a.streams + 1
    await asyncio.sleep(rng.uniform(0, 2))
    life = Life(slot, stream)
    while time.monotonic() < deadline:
        if stop_box.get("final") is not None:
            break
        await connection(host, port, life, rng.uniform(0.3, a.hold), None, deadline)
        await asyncio.sleep(rng.uniform(0, a.gap))
        if rng.random() < 1 / 8 and stop_box.get("final") is None:
            out.write(json.dumps(life.record()) + "\n")
            life = Life(slot, stream)
    final = stop_box.get("final")
    if final is not None:
        want = final.get(str(stream))
        life.final = True
        while (want is not None and (life.last is None or life.last < want)
               and time.monotonic() < deadline):
            await connection(host, port, life, deadline - time.monotonic(), want, deadline)
    out.write(json.dumps(life.record()) + "\n")


async def watch_stop(a, stop_box, deadline):
    while time.monotonic() < deadline:
        if os.path.exists(a.stop):
            await asyncio.sleep(0.2)   # the writer renames it into place; read once whole
            with open(a.stop) as f:
                stop_box["final"] = json.load(f)
            return
        await asyncio.sleep(0.5)


async def main_async(a):
    u = urlsplit(a.url)
    host, port = u.hostname, u.port
    deadline = time.monotonic() + a.deadline
    stop_box = {}
    with open(a.out, "w") as out:
        tasks = [asyncio.create_task(slot_main(a, host, port, i, out, stop_box, deadline))
                 for i in range(a.clients)]
        tasks.append(asyncio.create_task(watch_stop(a, stop_box, deadline)))
        await asyncio.gather(*tasks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="the bridge, http://127.0.0.1:PORT")
    ap.add_argument("--streams", type=int, required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--hold", type=float, default=6.0, help="longest connection, s")
    ap.add_argument("--gap", type=float, default=1.0, help="longest pause before reconnecting, s")
    ap.add_argument("--stop", required=True, help="file whose appearance starts the final catch-up")
    ap.add_argument("--out", required=True)
    ap.add_argument("--deadline", type=float, required=True, help="hard end, s from start")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    asyncio.run(main_async(a))


if __name__ == "__main__":
    sys.exit(main())
