#!/usr/bin/env python3
"""bench/retention/plot.py CSV PNG WINDOW RATE: draws the table size over time."""
import csv
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

src, dst, window, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
rows = list(csv.DictReader(open(src)))
t = [float(r["seconds"]) for r in rows]
mib = [int(r["bytes"]) / 1048576 for r in rows]
one = next((m for s, m in zip(t, mib) if s >= window), None)
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(t, mib, label="aegis.events, heap + indexes")
if one:
    ax.axhline(one, color="grey", linestyle=":", label="size after one window")
    ax.axhline(one * 1.5, color="red", linestyle="--", label="1.5 x one window")
for k in range(1, int(max(t) // window) + 1):
    ax.axvline(k * window, color="#ddd", linewidth=0.5)
ax.set_xlabel("seconds")
ax.set_ylabel("MiB")
ax.set_title(f"Store size under retention: {rate} events/s, keep {window:.0f} s")
ax.legend(loc="lower right")
fig.tight_layout()
fig.savefig(dst, dpi=100)
print(f"wrote {dst}")
