#!/usr/bin/env python3
"""Selection and tabulation for scripts/distill_results.sh.

  distill_table.py best <work> <seed> <method>   print the run name with the highest final validation
                                                 accuracy among runs named <method> or <method>_*
  distill_table.py table <work> "<seeds>"        write <work>/results.md and <work>/results.json

The table gives, per method, the test accuracy of its best setting (mean ± sample std over the seeds),
and the paired difference to "none": for each seed s, acc_method(s) − acc_none(s), then mean ± std of
those differences. Student runs of one seed share the initialisation seed, so the paired difference
removes the seed-to-seed spread that the methods have in common. Runs whose names match no method
(e.g. diag_*) are listed as diagnostics.
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


def method_of(name):
    # Longest match first: "ntkdkd" must not count as "ntkd".
    for m in sorted(METHODS, key=len, reverse=True):
        if name == m or name.startswith(m + "_"):
            return m
    return None


def runs(work, seed, method):
    out = []
    for p in glob.glob(os.path.join(work, f"*_s{seed}", "history.json")):
        name = os.path.basename(os.path.dirname(p))[: -len(f"_s{seed}")]
        if method_of(name) == method and name != "teacher":  # method None: diagnostics
            h = json.load(open(p))
            if h.get("epochs"):
                out.append((h["epochs"][-1]["val_acc"], name, h))
    return sorted(out, key=lambda r: (-r[0], r[1]))


def best(work, seed, method):
    r = runs(work, seed, method)
    if not r:
        sys.exit(f"no finished runs for method {method} (seed {seed}) in {work}")
    return r[0][1]


def pm(xs, scale=100.0, digits=2):
    """'mean ± std' of xs (fractions, shown ×scale); a single value without ±; '—' for none."""
    if not xs:
        return "—"
    m = statistics.mean(xs) * scale
    if len(xs) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {statistics.stdev(xs) * scale:.{digits}f}"


def signed(xs):
    if not xs:
        return "—"
    m = statistics.mean(xs) * 100
    if len(xs) == 1:
        return f"{m:+.2f}"
    return f"{m:+.2f} ± {statistics.stdev(xs) * 100:.2f}"


def last(h, key):
    e = h["epochs"][-1]
    return e.get(key) if key in e else e.get("extra", {}).get(key)


def table(work, seeds):
    seeds = seeds.split()
    first = seeds[0]
    js = {"seeds": seeds, "rows": [], "paired": [], "tuning": [], "diagnostics": []}
    t = {s: h["test_acc"] for s in seeds if (h := history(work, "teacher", s)) and h.get("test_acc") is not None}
    js["rows"].append({"method": "teacher", "test_acc": [t[s] for s in seeds if s in t]})
    rows = [("teacher (digital CNN)", "channels [16, 32], hidden 128", pm(list(t.values())), "", "", "", "",
             " / ".join(f"{t[s]*100:.2f}" for s in seeds if s in t), len(t))]
    per_seed = {}  # method -> {seed: history}
    for m in METHODS:
        r = runs(work, first, m)
        if not r:
            rows.append((m, "(not run)", "—", "—", "", "", "", "", 0))
            continue
        name = r[0][1]
        hs = {s: h for s in seeds if (h := history(work, name, s)) and h.get("test_acc") is not None}
        per_seed[m] = hs
        accs = [hs[s]["test_acc"] for s in seeds if s in hs]
        dist = [d for s in seeds if s in hs and (d := last(hs[s], "ntk_distance")) is not None]
        row = {"method": m, "setting": name, "seeds": [s for s in seeds if s in hs], "test_acc": accs,
               "val_acc": [last(hs[s], "val_acc") for s in seeds if s in hs],
               "train_acc": [last(hs[s], "train_acc") for s in seeds if s in hs], "ntk_distance": dist}
        js["rows"].append(row)
        for val, nm, h in r:
            js["tuning"].append({"method": m, "setting": nm, "val_acc": val, "test_acc": h.get("test_acc"),
                                 "train_acc": last(h, "train_acc"), "ntk_distance": last(h, "ntk_distance"),
                                 "seconds_per_epoch": statistics.median(e["seconds"] for e in h["epochs"])})
        rows.append((m, name, pm(accs), None, pm(row["train_acc"]), pm(row["val_acc"]),
                     pm(dist, 1, 4) if dist else "", " / ".join(f"{a*100:.2f}" for a in accs), len(accs)))

    def diffs(a, b):  # paired differences acc_a(s) − acc_b(s) over the seeds both have
        if a not in per_seed or b not in per_seed:
            return [], []
        common = [s for s in seeds if s in per_seed[a] and s in per_seed[b]]
        return common, [per_seed[a][s]["test_acc"] - per_seed[b][s]["test_acc"] for s in common]

    def wins(d):
        return f"{sum(x > 0 for x in d)}/{len(d)}" if d else ""

    out = []
    for row in rows:
        m = row[0]
        if row[3] is None:
            common, d = diffs(m, "none")
            cell = "reference" if m == "none" else (f"{signed(d)} ({wins(d)} seeds > 0)" if d else "—")
            row = row[:3] + (cell,) + row[4:]
        out.append(row)
    lines = [f"| method | setting (best on validation, seed {first}) | test % (mean ± std) | paired Δ vs none "
             "(points) | train % | val % | NTK distance (last epoch) | test % per seed | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in out]
    lines += ["", f"Paired differences of test accuracy (points; mean ± std over seeds {', '.join(seeds)}; "
              "per seed in brackets):", ""]
    for a, b in [(m, "none") for m in METHODS[1:]] + [("ntkd", "kd"), ("ntkd", "shared"), ("ntkd", "gd"),
                                                       ("ntkdkd", "kd")]:
        common, d = diffs(a, b)
        if not d:
            continue
        js["paired"].append({"a": a, "b": b, "seeds": common, "diff": d})
        lines.append(f"* {a} − {b}: {signed(d)} [" + ", ".join(f"s{s} {x*100:+.2f}" for s, x in zip(common, d))
                     + f"], > 0 in {wins(d)} seeds")
    lines += ["", f"Tuning runs (seed {first}): final-epoch validation accuracy", "",
              "| method | setting | val % | test % | train % | last-epoch NTK distance | s/epoch (median) |",
              "|---|---|---|---|---|---|---|"]
    for t in js["tuning"]:
        d = t["ntk_distance"]
        lines.append(f"| {t['method']} | {t['setting']} | {t['val_acc']*100:.2f} | {(t['test_acc'] or 0)*100:.2f} | "
                     f"{(t['train_acc'] or 0)*100:.2f} | {'' if d is None else f'{d:.4g}'} | "
                     f"{t['seconds_per_epoch']:.1f} |")
    # NTK distance over training, and diagnostic runs (names matching no method).
    curves = []
    for s in seeds:
        for val, nm, h in runs(work, s, "ntkd") + runs(work, s, "ntkdkd") + runs(work, s, None):
            ds = [e.get("extra", {}).get("ntk_distance") for e in h["epochs"]]
            if any(x is not None for x in ds):
                curves.append((nm, s, ds, [e["train_acc"] for e in h["epochs"]], [e["val_acc"] for e in h["epochs"]]))
            if method_of(nm) is None:
                js["diagnostics"].append({"setting": nm, "seed": s, "val_acc": val, "test_acc": h.get("test_acc"),
                                          "train_acc": last(h, "train_acc"), "ntk_distance": ds})
    if js["diagnostics"]:
        lines += ["", "Diagnostic runs (never selected); Δ = test accuracy minus that of the selected none run, same seed", "",
                  "| run | seed | val % | test % | train % | Δ vs none (points) |", "|---|---|---|---|---|---|"]
        for dg in js["diagnostics"]:
            ref = per_seed.get("none", {}).get(dg["seed"])
            delta = "" if ref is None or dg["test_acc"] is None else f"{(dg['test_acc'] - ref['test_acc'])*100:+.2f}"
            lines.append(f"| {dg['setting']} | {dg['seed']} | {dg['val_acc']*100:.2f} | {(dg['test_acc'] or 0)*100:.2f} | "
                         f"{(dg['train_acc'] or 0)*100:.2f} | {delta} |")
    if curves:
        lines += ["", "Per epoch: NTK distance d(Θ_T, Θ_S) (mean over the steps that computed it) / train % / val %", "",
                  "| run | seed | per epoch |", "|---|---|---|"]
        for nm, s, ds, tr, va in curves:
            lines.append(f"| {nm} | {s} | " + ", ".join(
                ("—" if d is None else f"{d:.4f}") + f" / {a*100:.1f} / {v*100:.1f}" for d, a, v in zip(ds, tr, va))
                + " |")
    open(os.path.join(work, "results.md"), "w").write("\n".join(lines) + "\n")
    json.dump(js, open(os.path.join(work, "results.json"), "w"), indent=2)
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "best":
        print(best(sys.argv[2], sys.argv[3], sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "table":
        table(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
