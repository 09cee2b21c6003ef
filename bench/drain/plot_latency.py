#!/usr/bin/env python3
"""bench/drain/plot_latency.py SWEEP PNG: commit -> Kafka append latency
percentiles (p50, p90, p99, max; medians over the rounds at each rate, every
round's p99 as a dot) against the offered publish rate, from the LAT_RATES
sweep of bench/drain/run.sh (lines: variant rate achieved p50 p90 p99 max)."""
import statistics
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
fig, ax = plt.subplots(figsize=(7, 4.2))
for tag in sorted({r[0] for r in rows}):
    rates = sorted({int(r[1]) for r in rows if r[0] == tag})
    name = "bridge" if tag == "-" else "alt"
    for col, label, style in ((3, "p50", "o-"), (4, "p90", "^-"), (5, "p99", "s-"), (6, "max", "x:")):
        ys = [statistics.median(float(r[col]) for r in rows if r[0] == tag and int(r[1]) == w) for w in rates]
        ax.plot(rates, ys, style, label=f"{name} {label}")
    ax.plot([int(r[1]) for r in rows if r[0] == tag], [float(r[5]) for r in rows if r[0] == tag],
            ".", color="grey", alpha=0.6, label=f"{name} p99 per round")
ax.axhline(3, color="red", lw=0.8, ls="--", label="goal p99 3 ms")
ax.set_xscale("log")
ax.set_yscale("symlog", linthresh=1)
ax.set_ylim(bottom=0)
ax.set_xlabel("published events/s (pgbench -R, 4 clients)")
ax.set_ylabel("created_at -> LogAppendTime, ms (1 ms steps)")
ax.set_title("commit -> Kafka latency vs load (medians over rounds)")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
print("chart:", sys.argv[2])
