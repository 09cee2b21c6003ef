#!/usr/bin/env python3
"""test/property/payloads.py: generates the property test's payloads as COPY
text rows "i <tab> kind <tab> type <tab> body" on stdout.

kind is workspace (type: a workspace event type; body: the payload),
conversation (type: the event; body: {"event", "node", "data"}) or topic
(body: a Kafka message value).  About half are valid payloads built from the
models; the rest are mutated: wrong types, huge numbers, deep nesting, long
strings, invalid Unicode escapes, \\u0000, duplicate keys, missing and extra
fields, broken JSON.  Bodies are JSON text written here (not re-serialized),
so that duplicate keys and odd number spellings reach the server as sent.

usage: payloads.py COUNT SEED
"""
import json
import random
import sys

ITEM = ["pending", "in_progress", "complete", "failed", "skipped", "needs_review"]
ART = ["document", "pdf", "data_export", "spreadsheet", "image", "other"]
SEV = ["info", "warning", "error", "critical"]
AGENT = ["started", "running", "waiting", "completed", "failed"]
ROLES = ["system", "user", "assistant", "tool"]
TEXTS = ["", "n", "Offset Well Identification", "caf\u00e9", "\u20ac 1,200", "\U0001F600 ok",
         "line\nbreak", "tab\there", "quote \" and \\ backslash", "\u00e9" * 40, "x" * 70]


class Gen:
    def __init__(self, rnd):
        self.r = rnd

    # ---- JSON text, written by hand so that mutations survive ----
    def text(self, v):
        if isinstance(v, Raw):
            return v.s
        if isinstance(v, dict):
            return "{" + ", ".join(self.text(k) + ": " + self.text(x) for k, x in v.items()) + "}"
        if isinstance(v, Pairs):
            return "{" + ", ".join(self.text(k) + ": " + self.text(x) for k, x in v.pairs) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(self.text(x) for x in v) + "]"
        return json.dumps(v, ensure_ascii=self.r.random() < 0.5)

    # ---- valid values ----
    def s(self):
        return self.r.choice(TEXTS) if self.r.random() < 0.7 else "s%d" % self.r.randrange(10 ** 6)

    def nonneg(self):
        c = self.r.random()
        if c < 0.6:
            return self.r.randrange(0, 1000)
        if c < 0.8:
            return Raw(self.r.choice(["0", "1e2", "3.0", "9223372036854775807", "1E3", "0.0"]))
        return self.r.randrange(0, 2 ** 62)

    def unit(self):
        return self.r.choice([0, 1, 0.5, 0.98, Raw("1.0"), Raw("0e5"), Raw("1e-300"), self.r.random()])

    def num_nonneg(self):
        return self.r.choice([0, 0.045, 12.5, Raw("1e299"), Raw("5E-3"), self.r.random() * 1e6])

    def position(self):
        p = [round(self.r.uniform(-180, 180), 4), round(self.r.uniform(-90, 90), 4)]
        if self.r.random() < 0.2:
            p.append(round(self.r.uniform(-100, 3000), 1))
        return p

    def geometry(self):
        t = self.r.choice(["Point", "LineString", "Polygon"])
        if t == "Point":
            c = self.position()
        elif t == "LineString":
            c = [self.position() for _ in range(self.r.randrange(2, 6))]
        else:
            ring = [self.position() for _ in range(self.r.randrange(3, 7))]
            c = [ring + [list(ring[0])]]
        return {"type": t, "coordinates": c}

    def feature(self):
        f = {"type": "Feature", "geometry": self.geometry() if self.r.random() < 0.9 else None}
        if self.r.random() < 0.8:
            f["properties"] = self.r.choice([None, {}, {"name": self.s()}])
        return f

    def opt(self, d, key, fn, p=0.5):
        if self.r.random() < p:
            d[key] = fn()

    def workspace(self, t):
        r, d = self.r, {}
        if t == "checklist_item_update":
            d = {"item_index": self.nonneg(), "item_name": self.s(), "status": r.choice(ITEM)}
            self.opt(d, "summary", self.s)
            self.opt(d, "completed_by", self.s)
        elif t == "artifact_generated":
            d = {"artifact_id": self.s(), "name": self.s(), "artifact_type": r.choice(ART)}
            for k, fn in [("item_index", self.nonneg), ("url", self.s), ("mime_type", self.s),
                          ("size_bytes", self.nonneg)]:
                self.opt(d, k, fn)
        elif t == "data_table_update":
            cols = ["c%d" % i for i in range(r.randrange(1, 8 if r.random() < 0.98 else 3000))]
            r.shuffle(cols)
            rows = [{c: r.choice([1, "v", None, 2.5]) for c in cols if r.random() < 0.7}
                    for _ in range(r.randrange(0, 5))]
            d = {"item_index": self.nonneg(), "columns": cols, "rows": rows,
                 "total_rows": len(rows) + r.randrange(0, 10)}
        elif t == "form_field_update":
            d = {"item_index": self.nonneg(), "field_name": self.s(),
                 "field_value": r.choice([self.s(), 3, None, True, 1.5]), "confidence": self.unit()}
            self.opt(d, "source", self.s)
        elif t == "validation_result":
            d = {"item_index": self.nonneg(), "check_name": self.s(), "passed": r.random() < 0.5,
                 "severity": r.choice(SEV)}
            self.opt(d, "message", self.s)
        elif t == "spatial_update":
            d = {"item_index": self.nonneg(),
                 "geojson": {"type": "FeatureCollection",
                             "features": [self.feature() for _ in range(r.randrange(0, 4))]}}
            self.opt(d, "distances", lambda: [{"from": self.s(), "to": self.s(),
                                               "distance_ft": self.num_nonneg()}
                                              for _ in range(r.randrange(0, 3))])
        elif t == "agent_status":
            d = {"status": r.choice(AGENT)}
            for k, fn in [("message", self.s), ("progress", self.unit), ("item_index", self.nonneg),
                          ("agent", self.s)]:
                self.opt(d, k, fn)
        elif t == "assessment_complete":
            total = r.randrange(0, 100)
            d = {"total_items": total, "completed_items": r.randrange(0, total + 1)}
            for k, fn in [("passed_checks", self.nonneg), ("failed_checks", self.nonneg),
                          ("summary", self.s), ("duration_ms", self.nonneg)]:
                self.opt(d, k, fn)
        if r.random() < 0.1:
            d["event_type"] = t
        items = list(d.items())
        r.shuffle(items)
        return dict(items)

    def conversation(self, e):
        r = self.r
        if e == "node_end":
            d = {"status": self.s()}
            self.opt(d, "tokens_used", self.nonneg)
            self.opt(d, "message", lambda: {"role": r.choice(ROLES), "content": self.s()})
            self.opt(d, "skills_injected", lambda: [self.s() for _ in range(r.randrange(0, 3))])
            node = r.choice(["initial_llm_call", "synthesis", "n\u00e9"])
        elif e == "done":
            d = {"execution_id": self.s(), "status": self.s()}
            self.opt(d, "tokens_used", self.nonneg)
            self.opt(d, "cost_usd", self.num_nonneg)
            self.opt(d, "skills_injected", lambda: [self.s() for _ in range(r.randrange(0, 3))])
            node = None
        else:
            d, node = {"error": self.s()}, None
        return {"event": e, "node": node, "data": d}

    # ---- mutations ----
    def wrong(self):
        r = self.r
        return r.choice([
            Raw("null"), True, "12", [], {}, -1, 1.5, Raw("-0"), Raw("1e400"), Raw("-1e400"),
            Raw("123456789012345678901234567890"), Raw("1e-400"), Raw("9223372036854775808"),
            Raw("-9223372036854775809"), Raw("1e131071"), "x" * (100000 if r.random() < 0.03 else r.choice([61, 1000])),
            Raw('"\\u0000"'), Raw('"a\\u0000b"'), Raw('"\\ud800"'), Raw('"\\udc00\\ud800"'),
            Raw('"\\uZZZZ"'), Raw('"\\u12"'), Raw('"\\ud83d\\ude00"'), Raw('"\\u00e9"'),
            self.deep(r.choice([10, 200, 1000, 5000]) if r.random() < 0.2 else 3), ["a", 1], {"type": "Feature"},
            Raw('"' + "\\u00e9" * 40 + '"'), [[[]]], Raw("[1, 2"), Raw("{\"a\": }"),
        ])

    def deep(self, n):
        if self.r.random() < 0.5:
            return Raw("[" * n + "1" + "]" * n)
        return Raw('{"a": ' * n + "1" + "}" * n)

    def mutate(self, d, depth=0):
        """d: a dict; returns a dict or Pairs (duplicates) or Raw."""
        r = self.r
        if not isinstance(d, dict) or not d:
            return self.wrong()
        keys = list(d.keys())
        k = r.choice(keys)
        c = r.random()
        if c < 0.35:
            d[k] = self.wrong()
        elif c < 0.45:
            del d[k]
        elif c < 0.55:
            d[r.choice(["extra", "Status", "event_type", "\u00e9", "item_index ", "x" * 300])] = self.wrong()
        elif c < 0.65:
            pairs = list(d.items()) + [(k, self.wrong() if r.random() < 0.5 else d[k])]
            r.shuffle(pairs)
            return Pairs(pairs)
        elif c < 0.8 and isinstance(d[k], dict) and depth < 4:
            d[k] = self.mutate(d[k], depth + 1)
        elif c < 0.9 and isinstance(d[k], list) and d[k]:
            lst = list(d[k])
            i = r.randrange(len(lst))
            lst[i] = self.mutate(lst[i], depth + 1) if isinstance(lst[i], dict) else self.wrong()
            if r.random() < 0.3:
                lst.append(lst[0])
            d[k] = lst
        elif c < 0.95:
            return Raw(self.text(d)[:-r.randrange(1, 4)])
        else:
            return r.choice([Raw("[]"), Raw('"s"'), Raw("null"), Raw("1"), Raw("{}")])
        return d


class Raw:
    def __init__(self, s):
        self.s = s


class Pairs:
    def __init__(self, pairs):
        self.pairs = pairs


WORKSPACE = ["checklist_item_update", "artifact_generated", "data_table_update", "form_field_update",
             "validation_result", "spatial_update", "agent_status", "assessment_complete"]


def copy_escape(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def main():
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    r = random.Random(seed)
    g = Gen(r)
    out = sys.stdout
    for i in range(count):
        c = r.random()
        mutations = 0 if r.random() < 0.45 else r.randrange(1, 4)
        if c < 0.6:
            kind, t = "workspace", r.choice(WORKSPACE)
            v = g.workspace(t)
        elif c < 0.85:
            kind, t = "conversation", r.choice(["node_end", "done", "error"])
            v = g.conversation(t)
            for _ in range(mutations):
                if isinstance(v, dict) and isinstance(v.get("data"), dict):
                    v["data"] = g.mutate(v["data"])
            if mutations and r.random() < 0.2:
                v["node"] = r.choice([None, "", "n", "x" * 2000, "\u00e9"])
            if mutations and r.random() < 0.1:
                v["event"] = r.choice(["Done", "node", "\u00e9", ""])
            mutations = 0
        else:
            kind, t = "topic", ""
            v = g.workspace(r.choice(WORKSPACE)) if r.random() < 0.7 else g.wrong()
        for _ in range(mutations):
            if isinstance(v, dict):
                v = g.mutate(v)
        if kind == "conversation":
            body = g.text({"event": v["event"], "node": v["node"], "data": v["data"]})
        else:
            body = g.text(v)
        out.write("%d\t%s\t%s\t%s\n" % (i, kind, t, copy_escape(body)))


if __name__ == "__main__":
    main()
