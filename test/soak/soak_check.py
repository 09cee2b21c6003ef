#!/usr/bin/python3
"""test/soak/soak_check.py: the soak test's verdict and chart (test/soak/soak.sh).

Owns the check of a finished soak run and its outputs (summary.json,
soak.png, the verdict line); reads only files soak.sh wrote into DIR:
  published.csv  n,stream,ws_id,topic_id,commit_epoch: the ground truth, one
                 row per publishing transaction (a workspace event and a
                 topic event), written in that transaction; commit_epoch is
                 PostgreSQL's commit timestamp (track_commit_timestamp)
  clients.jsonl  one line per client life (soak_clients.py)
  kafka.jsonl    the topic read back with kcat -J
  consumed.txt   "rows distinct dead_letters" of the consumer's handler table
  samples.jsonl  the sampler's 10 s records
  run.json       start, load_end, warmup seconds, retention keep (0: off), ...
Prints "ok - ..." / "not ok - ..." lines, then "# VERDICT: ..." and exits 1
when a check failed.  Run with Debian's python3 (python3-matplotlib).
"""
import bisect
import csv
import json
import math
import os
import sys


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


class Checker:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, cond, name):
        if cond:
            self.passed += 1
            print("ok - soak: " + name)
        else:
            self.failed += 1
            print("not ok - soak: " + name)
        sys.stdout.flush()


def load(d):
    run = json.load(open(os.path.join(d, "run.json")))
    pub = []
    with open(os.path.join(d, "published.csv")) as f:
        for r in csv.reader(f):
            pub.append((int(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4])))
    lives = os.path.join(d, "clients.jsonl")   # read one life at a time (it can be large)
    samples = [json.loads(l) for l in open(os.path.join(d, "samples.jsonl")) if l.strip()]
    kafka = []
    with open(os.path.join(d, "kafka.jsonl")) as f:
        for l in f:
            if l.strip():
                try:
                    kafka.append(json.loads(l))
                except ValueError:
                    pass
    consumed = [int(x) for x in open(os.path.join(d, "consumed.txt")).read().split()]
    return run, pub, lives, samples, kafka, consumed


def check_lives(c, run, pub, lives):
    """No gap, no duplicate, store order, per life across its reconnects."""
    by_stream, commit_of = {}, {}
    for n, s, ws, tp, ct in pub:
        by_stream.setdefault(s, []).append(ws)
        commit_of[ws] = ct
    for ids in by_stream.values():
        ids.sort()
    keep = run["retention_keep_s"]
    bad, empty, lat, lat_at = [], 0, [], []
    final_ok = final_n = 0
    st = {"lives": 0, "connects": 0, "errors": 0, "received": 0, "error_lines": []}
    for line in open(lives):
        if not line.strip():
            continue
        lf = json.loads(line)
        st["lives"] += 1
        st["connects"] += lf["connects"]
        st["errors"] += lf["n_errors"]
        st["received"] += len(lf["ids"])
        st["error_lines"] += ["slot %d: %s" % (lf["slot"], e) for e in lf["errors"][:2]][:20 - len(st["error_lines"])]
        ids, truth = lf["ids"], by_stream.get(lf["stream"], [])
        name = "slot %d stream %d" % (lf["slot"], lf["stream"])
        if lf["final"]:
            final_n += 1
        if not ids:
            empty += 1
            if lf["final"]:
                bad.append(name + ": final life received nothing")
            continue
        if any(b <= a for a, b in zip(ids, ids[1:])):
            bad.append(name + ": ids not strictly increasing (duplicate or out of order)")
            continue
        i = bisect.bisect_left(truth, ids[0])
        if i == len(truth) or truth[i] != ids[0]:
            bad.append(name + ": first id %d is not an event of its stream" % ids[0])
            continue
        want = truth[i:i + len(ids)]
        if want != ids:
            k = next(j for j in range(len(ids)) if j >= len(want) or want[j] != ids[j])
            bad.append(name + ": gap or foreign id at position %d: got %d, store has %s"
                       % (k, ids[k], want[k] if k < len(want) else "nothing"))
            continue
        # the first connect replays the stream from its start (retention may
        # have removed events older than keep: those after head - keep must be there)
        head0 = lf["heads"][0][1] if lf["heads"] else None
        if keep == 0:
            if ids[0] != truth[0]:
                bad.append(name + ": fresh connect began at %d, stream begins at %d" % (ids[0], truth[0]))
                continue
        elif head0 is not None:
            young = [w for w in truth if commit_of[w] >= head0 - keep]
            if young and ids[0] > young[0]:
                bad.append(name + ": fresh connect began at %d, event %d (younger than keep) missing"
                           % (ids[0], young[0]))
                continue
        if lf["final"]:
            if ids[-1] == truth[-1]:
                final_ok += 1
            else:
                bad.append(name + ": final life ended at %d, stream ends at %d" % (ids[-1], truth[-1]))
                continue
        # commit -> client latency of live events (committed after the head)
        heads = {h[0]: h[1] for h in lf["heads"]}
        for w, t, cn in zip(ids, lf["recv"], lf["conn"]):
            h = heads.get(cn)
            ct = commit_of[w]
            if h is not None and ct > h:
                lat.append(t - ct)
                lat_at.append(t)
    return bad, empty, final_ok, final_n, lat, lat_at, st


def check_kafka(pub, kafka):
    want = {tp for _, _, _, tp, _ in pub}
    got, total = set(), 0
    for m in kafka:
        if m.get("topic") != "soak":
            continue
        h = m.get("headers") or []
        ids = [h[i + 1] for i in range(0, len(h) - 1, 2) if h[i] == "aegis-event-id"]
        if ids:
            total += 1
            got.add(int(ids[0]))
    return len(want), len(got & want), len(want - got), len(got - want), total - len(got)


def windows(samples, lat, lat_at):
    """p99 latency per sampler window (the 10 s before each sample)."""
    order = sorted(range(len(lat_at)), key=lat_at.__getitem__)
    at = [lat_at[i] for i in order]
    vals = [lat[i] for i in order]
    out, prev = [], None
    for s in samples:
        lo = prev if prev is not None else s["t"] - 10
        a, b = bisect.bisect_right(at, lo), bisect.bisect_right(at, s["t"])
        p = pct(vals[a:b], 0.99)
        out.append(None if p is None else p * 1000)
        prev = s["t"]
    return out


def chart(d, run, samples, p99w, verdict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t0 = run["start"]
    x = [(s["t"] - t0) / 60 for s in samples]
    fig, ax = plt.subplots(5, 1, figsize=(10, 13), sharex=True)
    ax[0].plot(x, [s["rss_kb"] / 1024 for s in samples], label="bridge RSS (MiB)")
    ax[0].axvline(run["warmup_s"] / 60, color="grey", ls=":", label="end of warm-up")
    ax[0].set_ylabel("MiB")
    ax[0].set_ylim(0, max(s["rss_kb"] for s in samples) / 1024 * 1.25)
    a0 = ax[0].twinx()
    a0.plot(x, [s["fds"] for s in samples], color="tab:orange", label="bridge fds")
    a0.set_ylabel("fds")
    a0.set_ylim(0, max(s["fds"] for s in samples) * 1.25)
    ax[0].legend(loc="upper left")
    a0.legend(loc="upper right")
    ax[1].plot(x, [s["backends"] for s in samples], label="PostgreSQL backends")
    ax[1].plot(x, [s["sse_clients"] for s in samples], label="SSE connections (bridge /metrics)")
    ax[1].legend(loc="upper left")
    ax[2].plot(x, [s["events_bytes"] / 2**20 for s in samples], label="aegis.events (MiB, with indexes)")
    ax[2].plot(x, [s["other_bytes"] / 2**20 for s in samples], label="soak tables + consumer offsets (MiB)")
    ax[2].set_ylabel("MiB")
    ax[2].legend(loc="upper left")
    a2 = ax[2].twinx()
    a2.plot(x, [s["events_live"] or 0 for s in samples], color="tab:green", label="aegis.events live rows")
    a2.set_ylabel("rows")
    a2.legend(loc="lower right")
    ax[3].plot(x, [s["pending"] for s in samples], label="drain pending events")
    ax[3].plot(x, [s["published"] * 1 - s["consumed"] for s in samples], label="consumer behind (events)")
    ax[3].legend(loc="upper left")
    ax[4].plot(x, [p if p is not None else float("nan") for p in p99w], marker=".",
               label="p99 commit -> SSE client (ms, per 10 s)")
    ax[4].set_ylabel("ms")
    ax[4].set_xlabel("minutes")
    ax[4].legend(loc="upper left")
    for a in ax:
        a.axvline((run["load_end"] - t0) / 60, color="red", ls="--", lw=0.8)
        a.grid(alpha=0.3)
    fig.suptitle("aegis-bridge soak: " + verdict, fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(os.path.join(d, "soak.png"), dpi=90)


def main():
    d = sys.argv[1]
    run, pub, lives, samples, kafka, consumed = load(d)
    c = Checker()
    c.check(len(pub) > 0, "publishers committed %d transactions" % len(pub))
    c.check(len(samples) >= 3, "sampler recorded %d samples" % len(samples))

    bad, empty, final_ok, final_n, lat, lat_at, st = check_lives(c, run, pub, lives)
    connects, errors, received, n_lives = st["connects"], st["errors"], st["received"], st["lives"]
    for b in bad[:10]:
        print("# " + b)
    c.check(not bad, "every client life got its stream's events in store order, no gap, "
            "no duplicate, across reconnects (%d lives, %d connects, %d bad)"
            % (n_lives, connects, len(bad)))
    c.check(final_n == run["clients"] and final_ok == final_n,
            "every client caught up to its stream's last event at the end (%d/%d)"
            % (final_ok, run["clients"]))
    c.check(errors == 0, "no connection error (%d)" % errors)
    for e in st["error_lines"]:
        print("# " + e)

    kwant, kgot, kmiss, kextra, kdup = check_kafka(pub, kafka)
    c.check(kmiss == 0 and kwant > 0,
            "every topic event reached Kafka (%d distinct aegis-event-id of %d, %d missing)"
            % (kgot, kwant, kmiss))
    c.check(kextra == 0, "Kafka holds no event the soak did not publish (%d)" % kextra)
    rows, distinct, dead = consumed
    c.check(distinct == len(pub) and rows == distinct and dead == 0,
            "the consumer applied every message once (%d rows, %d distinct, %d dead letters, %d published)"
            % (rows, distinct, dead, len(pub)))

    warm = [s for s in samples if run["start"] + run["warmup_s"] <= s["t"] <= run["load_end"]]
    growth = None
    if len(warm) >= 2:
        r0, r1 = warm[0]["rss_kb"], warm[-1]["rss_kb"]
        growth = 100.0 * (r1 - r0) / r0
        c.check(growth < 5.0, "bridge RSS after warm-up grew < 5%% (%.1f MiB -> %.1f MiB, %+.1f%%)"
                % (r0 / 1024, r1 / 1024, growth))
    else:
        c.check(False, "enough samples after warm-up to judge RSS (%d)" % len(warm))
    fds = [s["fds"] for s in samples]
    fd_end = samples[-1]["fds"] if samples else None

    p99w = windows(samples, lat, lat_at)
    p99 = pct(lat, 0.99)
    p50 = pct(lat, 0.50)
    c.check(len(lat) > 0, "live events measured for commit -> client latency (%d)" % len(lat))

    mins = (run["load_end"] - run["start"]) / 60
    keep = run["retention_keep_s"]
    ret = ("retention on (keep %d s, %s rows removed)" % (keep, run.get("retention_removed", "?"))
           if keep else "retention skipped (%s)" % run.get("retention_note", "off"))
    ok = c.failed == 0
    verdict = ("soak %s: %.0f min, %d tx (%d workspace + %d topic events) on %d streams at %.0f tx/s; "
               "%d client slots, %d lives, %d connects, %d events received, %d lives with a gap/duplicate/disorder; "
               "Kafka %d/%d distinct; consumer %d/%d; RSS %s; fds %s..%s (end %s); "
               "p50/p99 commit->client %s/%s ms; %s; bridge %s"
               % ("PASS" if ok else "FAIL", mins, len(pub), len(pub), len(pub), run["streams"],
                  len(pub) / max(1, run["load_end"] - run["start"]),
                  run["clients"], n_lives, connects, received, len(bad),
                  kgot, kwant, distinct, len(pub),
                  ("%.1f->%.1f MiB (%+.1f%%)" % (warm[0]["rss_kb"] / 1024, warm[-1]["rss_kb"] / 1024, growth))
                  if growth is not None else "n/a",
                  min(fds) if fds else "?", max(fds) if fds else "?", fd_end,
                  "%.1f" % (p50 * 1000) if p50 is not None else "n/a",
                  "%.1f" % (p99 * 1000) if p99 is not None else "n/a",
                  ret, run.get("bridge", "?")))
    summary = {"verdict": verdict, "transactions": len(pub), "lives": n_lives,
               "connects": connects, "received": received, "bad": bad[:50], "empty_lives": empty,
               "kafka": {"published": kwant, "distinct": kgot, "missing": kmiss, "extra": kextra,
                         "duplicates": kdup},
               "consumer": {"rows": rows, "distinct": distinct, "dead_letters": dead},
               "rss_growth_pct": growth, "fds_min": min(fds) if fds else None,
               "fds_max": max(fds) if fds else None,
               "latency_ms": {"n": len(lat), "p50": p50 and p50 * 1000, "p99": p99 and p99 * 1000,
                              "max": max(lat) * 1000 if lat else None},
               "p99_windows_ms": p99w}
    json.dump(summary, open(os.path.join(d, "summary.json"), "w"), indent=1)
    try:
        chart(d, run, samples, p99w, verdict)
        c.check(True, "chart written (%s)" % os.path.join(d, "soak.png"))
    except Exception as e:  # the chart is an output the run must produce
        c.check(False, "chart written (%s)" % e)
    with open(os.path.join(d, "verdict.txt"), "w") as f:
        f.write(verdict + "\n")
    print("# VERDICT: " + verdict)
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
