#!/usr/bin/env python3
"""bench/sse/report.py: the table of bench/sse/run.sh.

Reads the results file run.sh writes (one line per measurement):
  lat SUBS:STREAMS nchan|bridge key=value...   (sseload run output)
  mem LAYOUT nchan|bridge RSS_B PSS_B KB_BEFORE KB_AFTER
and prints the latency and memory tables with bridge/nchan ratios and
whether the targets (latency within 1.2x of nchan, memory per connection
below nchan) were met.  A cell measured in several rounds has one "lat" line
per round and server; every number reported is the median over the rounds.
Arguments: FILE RATE EVENTS IDLE_CONNS NCHAN_WORKERS [ROUNDS].
"""
import statistics
import sys

path, rate, events, conns, workers = sys.argv[1:6]
rounds = sys.argv[6] if len(sys.argv) > 6 else "1"
runs, mem = {}, {}
for line in open(path):
    f = line.split()
    if f[0] == "lat":
        one = {k: float(v) for k, v in (x.split("=") for x in f[3:])}
        runs.setdefault(f[1], {}).setdefault(f[2], []).append(one)
    elif f[0] == "mem":
        mem.setdefault(f[1], {})[f[2]] = [int(x) for x in f[3:]]
# per cell and server: the median of each number over the rounds
lat = {c: {srv: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for srv, rs in by.items()}
       for c, by in runs.items()}


def scenario(c):
    s, st = map(int, c.split(":"))
    where = "one stream" if st == 1 else f"{st} streams"
    return f"{s:,} subscriber{'s' if s > 1 else ''}, {where}"


def ratio(b, n):
    return f"{b / n:.2f}x" if n > 0 else "n/a (nchan <= 0)"


def table(key, title):
    print(f"\n{title}")
    print("| scenario | nchan p50 / p99 ms | bridge p50 / p99 ms | ratio p50 / p99 |")
    print("|---|---|---|---|")
    met = True
    for c, r in lat.items():
        n, b = r["nchan"], r["bridge"]
        np50, np99, bp50, bp99 = n[key + "_p50"], n[key + "_p99"], b[key + "_p50"], b[key + "_p99"]
        met &= np50 > 0 and np99 > 0 and bp50 <= 1.2 * np50 and bp99 <= 1.2 * np99
        print(f"| {scenario(c)} | {np50:.3f} / {np99:.3f} | {bp50:.3f} / {bp99:.3f} "
              f"| {ratio(bp50, np50)} / {ratio(bp99, np99)} |")
    return met


print(f"\nbench-sse: {events} events at {rate}/s per cell, nchan with {workers} worker process(es), "
      f"same client (bench/sse/sseload.c) for both; {rounds} round(s) per cell and server, "
      "medians over the rounds")
met_start = table("start", "Commit -> receive: latency from the COMMIT sent (bridge: the "
                  "transaction that called publish_workspace_event) / the POST sent (nchan) to the "
                  "subscriber's read() (the target)")
print("\nCommit -> receive p50 ratio (bridge / nchan) of each round, in order:")
for c, by in runs.items():
    per = [f"{b['start_p50'] / n['start_p50']:.2f}x" if n["start_p50"] > 0 else "n/a"
           for n, b in zip(by["nchan"], by["bridge"])]
    print(f"- {scenario(c)}: {' '.join(per)}")
table("done", "Latency from the call's return (bridge: COMMIT returned; nchan: POST response read; "
      "nchan fans out before it answers, so its numbers are about 0 or negative)")
table("txn", "Latency from the start of the whole publish (bridge: BEGIN sent, then the SELECT "
      "and the COMMIT, three round trips; nchan: POST sent, as above)")
print("\nDeliveries; publish calls issued per second and call duration (p50 / p99 ms); latency "
      "from the time each event was due on the schedule (p50 / p99 ms, includes publisher lag)")
print("| scenario | nchan deliveries | bridge deliveries | nchan rate, call | bridge rate, call "
      "| nchan from due | bridge from due | server CPU ms nchan / bridge "
      "| s waited for the previous cell's closed streams nchan / bridge |")
print("|---|---|---|---|---|---|---|---|---|")
lagging = []
for c, r in lat.items():
    n, b = r["nchan"], r["bridge"]
    print(f"| {scenario(c)} | {int(n['received'])}/{int(n['expected'])} "
          f"| {int(b['received'])}/{int(b['expected'])} "
          f"| {n['rate']:.0f}/s, {n['pub_p50']:.3f} / {n['pub_p99']:.3f} "
          f"| {b['rate']:.0f}/s, {b['pub_p50']:.3f} / {b['pub_p99']:.3f} "
          f"| {n['due_p50']:.1f} / {n['due_p99']:.1f} | {b['due_p50']:.1f} / {b['due_p99']:.1f} "
          f"| {n['server_cpu_ms']:.0f} / {b['server_cpu_ms']:.0f} "
          f"| {n['settled_s']:.0f} / {b['settled_s']:.0f} |")
    lagging += [f"{srv} ({scenario(c)}: {r[srv]['rate']:.0f}/s)" for srv in ("nchan", "bridge")
                if r[srv]["rate"] < 0.95 * float(rate)]
if lagging:
    print(f"\nNOT at the offered {rate}/s (the server took the publish calls slower; "
          "latency from call start/return then excludes the backlog): " + ", ".join(lagging))

print("\nFor comparison: a separate LISTEN session's NOTIFY arrival after the COMMIT returned "
      "(the extension's notifier worker path; the bridge itself is woken by aegis.wait_all) vs the "
      "SSE delivery (ms, p50 / p99)")
print("| scenario | COMMIT return -> NOTIFY at a listener | COMMIT return -> SSE read() | NOTIFYs / events |")
print("|---|---|---|---|")
for c, r in lat.items():
    b = r["bridge"]
    if "notify_p50" in b:
        print(f"| {scenario(c)} | {b['notify_p50']:.3f} / {b['notify_p99']:.3f} "
              f"| {b['done_p50']:.3f} / {b['done_p99']:.3f} | {int(b['notifies'])} / {events}+warm-up |")

print(f"\nMemory per idle SSE connection at {int(conns):,} connections "
      "(bytes; server (after - before) / connections)")
print("| layout | nchan RSS (PSS) | bridge RSS (PSS) | ratio RSS | nchan / bridge RSS kB before -> after |")
print("|---|---|---|---|---|")
met_mem = True
for layout, r in mem.items():
    n, b = r["nchan"], r["bridge"]
    met_mem &= b[0] < n[0]
    print(f"| {layout} | {n[0]:,} ({n[1]:,}) | {b[0]:,} ({b[1]:,}) | {ratio(b[0], n[0])} "
          f"| {n[2]:,} -> {n[3]:,} / {b[2]:,} -> {b[3]:,} |")

verdict = lambda ok: "met" if ok else "MISSED"
print(f"\ntarget latency (commit -> receive) within 1.2x of nchan: {verdict(met_start)}; "
      f"memory per connection below nchan: {verdict(met_mem)}")
