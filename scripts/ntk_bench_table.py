#!/usr/bin/env python3
"""The table of scripts/ntk_bench_study.sh: per student method (none, KD, NTKD) and as-built profile, the
deployed design's simulated accuracy, the uncompensated bench accuracy and its loss, and the task / NTKD
re-fits from 2 % of the training set; mean ± sample std over the seeds and the paired difference to the
student trained without distillation. usage: ntk_bench_table.py <work-dir> <seed>...
Writes <work-dir>/results.md and results.json and prints the Markdown."""
import json
import os
import statistics
import sys

work, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
METHODS = ["none", "kd", "ntkd"]


def cells(method, seed):
    with open(os.path.join(work, f"{method}_s{seed}", "report.json")) as f:
        r = json.load(f)
    out = {"student": r["student"]["test_acc"], "design": r["deploy"]["simulated_acc"]}
    for p in r["profiles"]:
        a = p["accuracy"]
        row = next(x for x in a["fractions"] if abs(x["fraction"] - 0.02) < 1e-9)
        name = p["profile"]
        out[f"{name} bench"] = a["none"]
        out[f"{name} loss"] = r["deploy"]["simulated_acc"] - a["none"]
        out[f"{name} task 2%"] = row["task_refit"]
        out[f"{name} ntkd 2%"] = row["ntkd_refit"]
    return out


data = {m: {s: cells(m, s) for s in seeds} for m in METHODS}
keys = list(data["none"][seeds[0]].keys())


def ms(v):
    v = [100 * x for x in v]
    return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"


lines = ["| % (test) | none | KD | NTKD | KD − none (seeds > 0) | NTKD − none (seeds > 0) |", "|---|---|---|---|---|---|"]
summary = {m: {k: [data[m][s][k] for s in seeds] for k in keys} for m in METHODS}
for k in keys:
    row = [ms(summary[m][k]) for m in METHODS]
    for m in ["kd", "ntkd"]:
        diffs = [a - b for a, b in zip(summary[m][k], summary["none"][k])]
        row.append(f"{ms(diffs)} ({sum(x > 0 for x in diffs)}/{len(seeds)})")
    lines.append(f"| {k} | " + " | ".join(row) + " |")
text = "\n".join(lines) + "\n\n(test %; loss = design − bench, so a lower loss is a more robust element; " \
       "(k/n) = seeds where the difference is > 0)\n"
with open(os.path.join(work, "results.md"), "w") as f:
    f.write(text)
with open(os.path.join(work, "results.json"), "w") as f:
    json.dump({"seeds": seeds, "runs": summary}, f, indent=1)
print(text)
