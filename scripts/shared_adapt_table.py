#!/usr/bin/env python3
"""Tables of scripts/shared_adapt_study.sh: test accuracy per seed, mean ± sample std, paired differences
to the frozen head, median seconds per epoch, and the teacher's own accuracy before and after adaptation.

    scripts/shared_adapt_table.py <work-dir> [<lr_scale>:<keep_weight> of the tuned setting]
"""
import json
import os
import statistics as st
import sys

work = sys.argv[1]
best = sys.argv[2] if len(sys.argv) > 2 else "1:0.1"


def hist(run, s):
    p = f"{work}/{run}_s{s}/history.json"
    return json.load(open(p)) if os.path.exists(p) else None


def ms(v, sign=""):
    return f"{st.mean(v):{sign}.2f} ± {st.stdev(v):.2f}" if len(v) > 1 else (f"{v[0]:{sign}.2f}" if v else "")


def name(g):
    l, k = g.split(":")
    return f"adapt_l{l}_k{k}"


runs = [("shared, own head", "own"), ("shared, frozen head at test", "frozen")]
runs += [(f"adapted lr_scale {g.split(':')[0]}, κ {g.split(':')[1]}", name(g)) for g in dict.fromkeys([best, "1:1"])]
runs += [("KD (T 4, α 0.9)", "kd")]
acc = {r: [h["test_acc"] * 100 if (h := hist(r, s)) else None for s in (1, 2, 3)] for _, r in runs}
print("| run | test % per seed (1 / 2 / 3) | mean ± std | paired Δ vs frozen | s per epoch (median, per seed) |")
print("|---|---|---|---|---|")
for label, r in runs:
    v = acc[r]
    d = [a - b for a, b in zip(v, acc["frozen"]) if a is not None and b is not None]
    sec = [st.median(e["seconds"] for e in h["epochs"]) for s in (1, 2, 3) if (h := hist(r, s))]
    pd = "reference" if r == "frozen" else (
        f"{ms(d, '+')} ({' / '.join(f'{x:+.2f}' for x in d)}; {sum(x > 0 for x in d)}/{len(d)} > 0)" if d else "")
    print(f"| {label} | {' / '.join('-' if x is None else f'{x:.2f}' for x in v)} | "
          f"{ms([x for x in v if x is not None])} | {pd} | {' / '.join(f'{x:.1f}' for x in sec)} |")
print()
print("| run | teacher test % before → after, per seed | lowest epoch (test) | teacher val % before → after | student's own head, test % |")
print("|---|---|---|---|---|")
for label, r in runs[1:-1]:
    cells = [[], [], [], []]
    for s in (1, 2, 3):
        h = hist(r, s)
        if not h:
            continue
        S = h["summary"]
        tt = [e["extra"]["teacher_test_acc"] * 100 for e in h["epochs"] if "teacher_test_acc" in e["extra"]]
        cells[0].append(f"{S['teacher_test_acc_before'] * 100:.2f} → {S['teacher_test_acc_after'] * 100:.2f}")
        cells[1].append(f"{min(tt):.2f}" if tt else "-")
        cells[2].append(f"{S['teacher_val_acc_before'] * 100:.2f} → {S['teacher_val_acc_after'] * 100:.2f}")
        cells[3].append(f"{S['own_head_test_acc'] * 100:.2f}")
    print(f"| {label} | " + " | ".join(" / ".join(c) for c in cells) + " |")
