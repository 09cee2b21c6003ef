#!/usr/bin/env python3
"""test/kafka/check_drain.py: compares what the drain delivered to Kafka with the store.

Usage: check_drain.py STORE.jsonl KAFKA.jsonl [--after ID]
  STORE.jsonl  one JSON object per line: {"id","topic","key","headers","type","value"}
               (the store's topic events the check covers)
  KAFKA.jsonl  `kcat -C -J` output of the same topics (one JSON envelope per message)
Prints one JSON object of counts: every value 0 means delivered once, intact, in
order; "duplicates" counts extra copies and "dup_min_id" the smallest duplicated id.
Messages whose aegis-event-id is not in STORE.jsonl are counted in "foreign"
(other scenarios' events) and otherwise ignored.
"""
import json
import sys


def load_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def header_map(hdrs):
    """kcat -J headers: a flat [name, value, name, value, ...] list"""
    out = {}
    for i in range(0, len(hdrs or []) - 1, 2):
        out.setdefault(hdrs[i], []).append(hdrs[i + 1])
    return out


def check(store, msgs):
    want = {e["id"]: e for e in store}
    r = dict(missing=0, duplicates=0, dup_min_id=None, wrong_value=0, wrong_key=0,
             wrong_headers=0, wrong_topic=0, order_violations=0, key_split=0,
             foreign=0, no_id_header=0, delivered=0)
    seen = {}
    per_key = {}
    msgs = sorted(msgs, key=lambda m: (m["topic"], m["partition"], m["offset"]))
    for m in msgs:
        h = header_map(m.get("headers"))
        ids = h.get("aegis-event-id", [])
        if len(ids) != 1:
            r["no_id_header"] += 1
            continue
        eid = int(ids[0])
        e = want.get(eid)
        if e is None:
            r["foreign"] += 1
            continue
        if eid in seen:
            r["duplicates"] += 1
            r["dup_min_id"] = eid if r["dup_min_id"] is None else min(r["dup_min_id"], eid)
        else:
            seen[eid] = m
        if m["topic"] != e["topic"]:
            r["wrong_topic"] += 1
        if m.get("payload") != e["value"]:
            r["wrong_value"] += 1
        if m.get("key") != e["key"]:
            r["wrong_key"] += 1
        expect = {"aegis-event-id": [str(eid)], "aegis-event-type": [e["type"]]}
        for k, v in (e.get("headers") or {}).items():
            expect.setdefault(k, []).append(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
        if {k: sorted(v) for k, v in h.items()} != {k: sorted(v) for k, v in expect.items()}:
            r["wrong_headers"] += 1
        if e["key"] is not None:
            per_key.setdefault((m["topic"], e["key"]), []).append((m["partition"], eid))
    r["delivered"] = len(seen)
    r["missing"] = len(want) - len(seen)
    r["missing_ids"] = sorted(set(want) - set(seen))[:10]
    for (_topic, _key), seq in per_key.items():
        if len({p for p, _ in seq}) > 1:
            r["key_split"] += 1
        firsts, got = [], set()
        for _p, eid in seq:          # first occurrences, in partition (offset) order
            if eid not in got:
                got.add(eid)
                firsts.append(eid)
        r["order_violations"] += sum(1 for a, b in zip(firsts, firsts[1:]) if b <= a)
    return r


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(json.dumps(check(load_lines(sys.argv[1]), load_lines(sys.argv[2])), sort_keys=True))


if __name__ == "__main__":
    main()
