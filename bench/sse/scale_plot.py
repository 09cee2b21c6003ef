#!/usr/bin/env python3
"""bench/sse/scale_plot.py SCALE_TSV PNG: the chart of bench/sse/scale.sh:
memory per connection and p99 latency (commit/POST -> read) against the
number of concurrent SSE connections, aegis-bridge and nginx + nchan."""
import csv
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["p99_ms"] not in ("", "-")]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
for srv, style in (("bridge", "o-"), ("nchan", "s--")):
    rs = sorted((r for r in rows if r["server"] == srv), key=lambda r: int(r["conns"]))
    if not rs:
        continue
    n = [int(r["conns"]) for r in rs]
    label = "aegis-bridge" if srv == "bridge" else "nginx + nchan (1 worker)"
    ax1.plot(n, [int(r["bytes_per_conn_rss"]) / 1024 for r in rs], style, label=label)
    ax2.plot(n, [float(r["p99_ms"]) for r in rs], style, label=label + " p99")
    ax2.plot(n, [float(r["p50_ms"]) for r in rs], style, alpha=0.4, label=label + " p50")
ax1.set_xlabel("concurrent SSE connections")
ax1.set_ylabel("server RSS per connection (KiB)")
ax1.axhline(5, color="grey", lw=0.8, ls=":")
ax1.set_ylim(bottom=0)
ax1.legend()
ax1.set_title("memory per connection")
ax2.set_xlabel("concurrent SSE connections")
ax2.set_ylabel("commit/POST -> read (ms)")
ax2.set_yscale("log")
ax2.legend(fontsize=8)
ax2.set_title("latency at 1k events/s over 1,000 streams")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
print("chart:", sys.argv[2])
