#!/usr/bin/env python3
"""Selection and tabulation for scripts/distill_results.sh.

  distill_table.py best <work> <seed> <method>   print the run name with the highest validation accuracy
                                                 of the kept model (the best epoch under the convergence
                                                 rule, else the final one) among runs named <method> or <method>_*
  distill_table.py combo <work> <seed>           print the distill section of NTKD + KD: the best NTKD
                                                 setting with the best KD setting's temperature and α
  distill_table.py table <work> "<seeds>" ["<methods>"]
                                                 write <work>/results.md and <work>/results.json, with
                                                 the rows of <methods> only (default: all of METHODS)
  distill_table.py method <run name>             print the method a run name belongs to ("" for none)

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


def kept(h):
    """The epoch record of the model a run kept: the best epoch under the convergence rule, else the last."""
    stop = h.get("stop")
    return h["epochs"][stop["best_epoch"] - 1] if stop and stop.get("best_epoch") else h["epochs"][-1]


def runs(work, seed, method):
    out = []
    for p in glob.glob(os.path.join(work, f"*_s{seed}", "history.json")):
        name = os.path.basename(os.path.dirname(p))[: -len(f"_s{seed}")]
        if method_of(name) == method and name != "teacher":  # method None: diagnostics
            h = json.load(open(p))
            if h.get("epochs"):
                out.append((kept(h)["val_acc"], name, h))
    return sorted(out, key=lambda r: (-r[0], r[1]))


def best(work, seed, method):
    r = runs(work, seed, method)
    if not r:
        sys.exit(f"no finished runs for method {method} (seed {seed}) in {work}")
    return r[0][1]


def combo(work, seed):
    cfg = lambda m: json.load(open(os.path.join(work, f"{best(work, seed, m)}_s{seed}.json")))["distill"]
    d, kd = cfg("ntkd"), cfg("kd")
    d.update({"ntk_with_kd": True, "temperature": kd["temperature"], "kd_alpha": kd["kd_alpha"]})
    return json.dumps(d)


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
    e = kept(h)
    return e.get(key) if key in e else e.get("extra", {}).get(key)


def test_at(h, pick):
    """Test accuracy logged (train.log_test_acc) after the epoch pick(h) (1-based), or None."""
    e = pick(h)
    if e is None or e < 1 or e > len(h["epochs"]):
        return None
    return h["epochs"][e - 1].get("extra", {}).get("test_acc")


def converged(per_seed, seeds, js):
    """Lines on runs stopped by the convergence rule: where each stopped, and every method compared at
    the same epoch count and at the same training time (seconds of training steps and validation, from
    the history), both from the test accuracy each epoch's weights logged."""
    stopped = {m: hs for m, hs in per_seed.items() if all("stop" in h for h in hs.values()) and hs}
    if not stopped:
        return []
    out = ["", "Convergence (the rule: stop after `patience` epochs without a validation gain above "
           "`min_delta`, at most the cap; the best epoch's parameters are kept):", "",
           "| method | stopped after epoch (per seed) | kept epoch (per seed) | training s to the stop (mean) | "
           "test % of the kept model |", "|---|---|---|---|---|"]
    secs = lambda h: [sum(e["seconds"] for e in h["epochs"][:i + 1]) for i in range(len(h["epochs"]))]
    total = {}
    for m, hs in stopped.items():
        ss = [s for s in seeds if s in hs]
        total[m] = statistics.mean(secs(hs[s])[-1] for s in ss)
        out.append(f"| {m} | {' / '.join(str(hs[s]['stop']['stopped_epoch']) for s in ss)} | "
                   f"{' / '.join(str(hs[s]['stop']['best_epoch']) for s in ss)} | {total[m]:.0f} | "
                   f"{pm([hs[s]['test_acc'] for s in ss])} |")
    E = min(h["stop"]["stopped_epoch"] for hs in stopped.values() for h in hs.values())
    T = min(total.values())

    def at_time(h):
        c = secs(h)
        within = [i + 1 for i, x in enumerate(c) if x <= T]
        return within[-1] if within else None

    def compare(title, pick, detail):
        rows = ["", title, "", "| method | test % (mean ± std) | paired Δ vs none (points) | per seed |", "|---|---|---|---|"]
        vals = {m: {s: test_at(h, pick) for s, h in hs.items()} for m, hs in stopped.items()}
        for m, v in vals.items():
            ss = [s for s in seeds if v.get(s) is not None]
            base = vals.get("none", {})
            d = [v[s] - base[s] for s in ss if base.get(s) is not None]
            cell = "reference" if m == "none" else (f"{signed(d)} ({sum(x > 0 for x in d)}/{len(d)} seeds > 0)" if d else "—")
            rows.append(f"| {m} | {pm([v[s] for s in ss])} | {cell} | "
                        + " / ".join(f"{v[s]*100:.2f}{detail(stopped[m][s])}" for s in ss) + " |")
            js.setdefault("compare", []).append({"title": title, "method": m, "seeds": ss, "test_acc": [v[s] for s in ss]})
        return rows

    out += compare(f"At equal epochs: the weights after epoch {E} (the earliest stop of any run), every method",
                   lambda h: E, lambda h: "")
    out += compare(f"At equal training time: the weights of the last epoch finished within {T:.0f} s "
                   "(the shortest mean time to the stop of any method); epochs in brackets",
                   at_time, lambda h: f" ({at_time(h)})")
    js["convergence"] = {"equal_epochs": E, "equal_seconds": T, "total_seconds": total}
    return out


def table(work, seeds, methods=None):
    seeds = seeds.split()
    methods = [m for m in METHODS if methods is None or m in methods.split()]
    first = seeds[0]
    js = {"seeds": seeds, "rows": [], "paired": [], "tuning": [], "diagnostics": []}
    t = {s: h["test_acc"] for s in seeds if (h := history(work, "teacher", s)) and h.get("test_acc") is not None}
    js["rows"].append({"method": "teacher", "test_acc": [t[s] for s in seeds if s in t]})
    rows = [("teacher (digital CNN)", "channels [16, 32], hidden 128", pm(list(t.values())), "", "", "", "",
             " / ".join(f"{t[s]*100:.2f}" for s in seeds if s in t), len(t))]
    per_seed = {}  # method -> {seed: history}
    for m in methods:
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
             "(points) | train % | val % | NTK distance (kept epoch) | test % per seed | seeds |",
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
    lines += converged(per_seed, seeds, js)
    lines += ["", f"Tuning runs (seed {first}): validation accuracy of the kept model", "",
              "| method | setting | val % | test % | train % | kept-epoch NTK distance | s/epoch (median) |",
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
    elif len(sys.argv) == 4 and sys.argv[1] == "combo":
        print(combo(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "table":
        table(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "method":
        print(method_of(sys.argv[2]) or "")
    else:
        sys.exit(__doc__)
