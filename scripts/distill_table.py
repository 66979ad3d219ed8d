#!/usr/bin/env python3
"""Selection and tabulation for scripts/distill_results.sh.

  distill_table.py best <work> <seed> <method>   print the run name with the highest final validation
                                                 accuracy among runs named <method> or <method>_*
  distill_table.py table <work> "<seeds>"        write <work>/results.md and <work>/results.json
"""
import glob
import json
import os
import statistics
import sys

METHODS = ["none", "kd", "gd", "shared", "ntkd", "ntkdkd"]


def history(work, name, seed):
    p = os.path.join(work, f"{name}_s{seed}", "history.json")
    return json.load(open(p)) if os.path.exists(p) else None


def runs(work, seed, method):
    out = []
    for p in glob.glob(os.path.join(work, f"*_s{seed}", "history.json")):
        name = os.path.basename(os.path.dirname(p))[: -len(f"_s{seed}")]
        if name == method or name.startswith(method + "_"):
            h = json.load(open(p))
            if h.get("epochs"):
                out.append((h["epochs"][-1]["val_acc"], name, h))
    return sorted(out, key=lambda r: -r[0])


def best(work, seed, method):
    r = runs(work, seed, method)
    if not r:
        sys.exit(f"no finished runs for method {method} (seed {seed}) in {work}")
    return r[0][1]


def fmt(xs):
    if not xs:
        return "—", 0
    m = statistics.mean(xs) * 100
    s = statistics.stdev(xs) * 100 if len(xs) > 1 else float("nan")
    return (f"{m:.2f} ± {s:.2f}" if len(xs) > 1 else f"{m:.2f}"), len(xs)


def table(work, seeds):
    seeds = seeds.split()
    first = seeds[0]
    rows, js = [], {"seeds": seeds, "rows": [], "tuning": []}
    t = [history(work, "teacher", s) for s in seeds]
    t = [h["test_acc"] for h in t if h and h.get("test_acc") is not None]
    cell, n = fmt(t)
    rows.append(("teacher (digital CNN)", "channels [16, 32], hidden 128", cell, n))
    js["rows"].append({"method": "teacher", "test_acc": t})
    for m in METHODS:
        r = runs(work, first, m)
        if not r:
            rows.append((m, "(not run)", "—", 0))
            continue
        name = r[0][1]
        accs = [h["test_acc"] for s in seeds if (h := history(work, name, s)) and h.get("test_acc") is not None]
        cell, n = fmt(accs)
        rows.append((m, name, cell, n))
        js["rows"].append({"method": m, "setting": name, "test_acc": accs})
        for val, nm, h in r:
            js["tuning"].append({"method": m, "setting": nm, "val_acc": val, "test_acc": h.get("test_acc"),
                                 "ntk_distance": h["epochs"][-1]["extra"].get("ntk_distance")})
    lines = ["| method | setting (best on validation, seed %s) | test accuracy %% (mean ± std) | seeds |" % first,
             "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "Tuning runs (seed %s): final-epoch validation accuracy" % first, "",
              "| method | setting | val % | test % | last-epoch NTK distance |", "|---|---|---|---|---|"]
    for t in js["tuning"]:
        d = t["ntk_distance"]
        lines.append(f"| {t['method']} | {t['setting']} | {t['val_acc']*100:.2f} | "
                     f"{(t['test_acc'] or 0)*100:.2f} | {'' if d is None else f'{d:.4g}'} |")
    open(os.path.join(work, "results.md"), "w").write("\n".join(lines) + "\n")
    json.dump(js, open(os.path.join(work, "results.json"), "w"), indent=2)
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1] == "best":
        print(best(sys.argv[2], sys.argv[3], sys.argv[4]))
    elif sys.argv[1] == "table":
        table(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
