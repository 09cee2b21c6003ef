#!/usr/bin/env python3
"""bench/sse/hops.py EVENTS TRACE BRIDGE_TID BACKEND_TID [LIVE_FD|auto]: per-hop
times of SSE deliveries (see bench/sse/hops.sh).

EVENTS: sseload --dump lines (k stream start done id first median last n),
CLOCK_MONOTONIC ns.  TRACE: `perf script --ns -F tid,time,event,trace` of the
bridge and of the backend serving its wait_all, recorded with -k mono.

Batches: the bridge sends the wait_all query (sendto on LIVE_FD), reads the
result (first recvfrom on LIVE_FD returning > 0 after it; auto: the
bridge's most read descriptor, its clients hardly send during a run), writes to the
clients (sendto on other fds) and sends the next query.  The backend's side
of a batch: its last epoll_wait return (woken) before its answer (sendto)
that precedes the bridge's read.  An event belongs to the last batch whose
first client write came before the event's first receipt (approximate: a
subscriber reads within tens of microseconds of its write, the batches are
hundreds of microseconds apart)."""
import bisect
import re
import statistics
import sys

ev_path, tr_path, br_tid, be_tid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
live_fd = sys.argv[5] if len(sys.argv) > 5 else "auto"
LINE = re.compile(r"^\s*(\d+)\s+([\d.]+):\s+syscalls:(\w+):\s*(.*)$")
FD = re.compile(r"fd: (0x[0-9a-f]+)")

br, be = [], []          # (t_ns, kind, value)
pending_fd = None
for line in open(tr_path):
    m = LINE.match(line)
    if not m:
        continue
    tid, t, name, rest = int(m.group(1)), m.group(2), m.group(3), m.group(4)
    sec, _, frac = t.partition(".")
    t = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
    if tid == br_tid:
        if name == "sys_enter_sendto":
            br.append((t, "send", int(FD.search(rest).group(1), 16)))
        elif name == "sys_enter_recvfrom":
            pending_fd = int(FD.search(rest).group(1), 16)
        elif name == "sys_exit_recvfrom":
            ret = int(rest.split()[0], 16)
            if ret >= 1 << 63:
                ret -= 1 << 64
            br.append((t, "recv", (pending_fd, ret)))
        elif name == "sys_exit_epoll_wait":
            br.append((t, "wake", None))
    elif tid == be_tid:
        if name == "sys_enter_sendto":
            be.append((t, "send", None))
        elif name == "sys_exit_epoll_wait":
            be.append((t, "wake", None))

if live_fd == "auto":   # the live reader's connection: the bridge's most read descriptor
    counts = {}
    for t, kind, v in br:
        if kind == "recv":
            counts[v[0]] = counts.get(v[0], 0) + 1
    live_fd = max(counts, key=counts.get)
live_fd = int(live_fd)

# bridge batches: a client write belongs to the last batch whose result was
# read (also when the next poll was sent before the writes)
batches = []             # dict(q, r, first, last, sends)
cur = None
for t, kind, v in br:
    if kind == "send" and v == live_fd:
        cur = {"q": t, "r": None, "sends": 0, "first": None, "last": None}
        batches.append(cur)
    elif kind == "recv" and cur and v[0] == live_fd and v[1] > 0 and cur["r"] is None:
        cur["r"] = t
    elif kind == "send":
        b = next((b for b in reversed(batches[-2:]) if b["r"] is not None), None)
        if b is not None:
            b["sends"] += 1
            b["first"] = b["first"] or t
            b["last"] = t
batches = [b for b in batches if b["r"] is not None and b["sends"] > 0]
be_send = [t for t, k, _ in be if k == "send"]
be_wake = [t for t, k, _ in be if k == "wake"]
for b in batches:
    i = bisect.bisect_left(be_send, b["r"]) - 1
    b["ans"] = be_send[i] if i >= 0 else None
    j = bisect.bisect_left(be_wake, b["ans"]) - 1 if b["ans"] else -1
    b["woke"] = be_wake[j] if j >= 0 else None
firsts = [b["first"] for b in batches]

events = []
late = []                # the batch's wait_all query was sent after the event's commit returned
late_wait = []
for line in open(ev_path):
    k, stream, start, done, eid, f, med, last, n = map(int, line.split())
    if n == 0:
        continue
    i = bisect.bisect_right(firsts, f) - 1
    if i < 0:
        continue
    b = batches[i]
    if b["ans"] is None or b["woke"] is None:
        continue
    late.append(b["q"] > done)
    if b["q"] > done:
        late_wait.append(b["q"] - done)
    events.append({
        "total (commit sent -> median subscriber read)": med - start,
        "1 commit sent -> wait_all backend woken": b["woke"] - start,
        "2 backend woken -> answer sent": b["ans"] - b["woke"],
        "3 answer sent -> bridge read the result": b["r"] - b["ans"],
        "4 bridge read -> first client write": b["first"] - b["r"],
        "5 first -> last client write of the batch": b["last"] - b["first"],
        "6 first client write -> first subscriber read": f - b["first"],
        "7 first -> median subscriber read": med - f,
        "8 median -> last subscriber read": last - med,
        "commit returned to the publisher (after commit sent)": done - start,
    })

def ms(x):
    return f"{x / 1e6:7.3f}"

if not events:
    print("no event could be matched to a traced batch")
    sys.exit(1)
events.sort(key=lambda e: e["total (commit sent -> median subscriber read)"])
tail = events[int(len(events) * 0.99):]
keys = list(events[0])
print(f"events matched: {len(events)}; bridge batches: {len(batches)}; "
      f"client writes per batch: median {statistics.median(b['sends'] for b in batches):.0f}, "
      f"max {max(b['sends'] for b in batches)}; batches per second of trace: "
      f"{len(batches) / ((batches[-1]['r'] - batches[0]['r']) / 1e9):.0f}")
print(f"events whose commit had returned before the bridge sent the poll that read them (bridge busy "
      f"with the previous batch): {sum(late)} of {len(late)}; their wait for that poll: median "
      f"{ms(statistics.median(late_wait)) if late_wait else '-'} ms, p99 "
      f"{ms(sorted(late_wait)[int(len(late_wait) * 0.99)]) if late_wait else '-'} ms")
early = sum(1 for e in events if e["1 commit sent -> wait_all backend woken"] < 0)
print(f"events whose backend wake-up came before their commit was sent (backend already awake, hop 1 < 0): {early}")
print()
print("| hop | median over all events, ms | p99 | median over the slowest 1% (by total), ms |")
print("|---|---|---|---|")
for key in keys:
    xs = sorted(e[key] for e in events)
    print(f"| {key} | {ms(statistics.median(xs))} | {ms(xs[int(len(xs) * 0.99)])} | {ms(statistics.median(e[key] for e in tail))} |")
