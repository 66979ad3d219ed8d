#!/usr/bin/env python3
"""The segmentation job's report as markdown tables: mean IoU of the teacher and of every method per seed,
the means with their paired differences against the first method, and the equal-epoch and equal-time
comparisons.

usage: segment_table.py runs/segment/report.json
"""
import json
import statistics
import sys


def pct(v):
    return "%.2f" % (100.0 * v)


def main(path):
    with open(path) as f:
        rep = json.load(f)
    runs, summary = rep["runs"], rep["summary"]
    methods = list(summary.keys())
    ref = rep.get("equal_time_reference", methods[0])
    seeds = list(runs[ref].keys())
    t = rep["teacher"]
    print("teacher: mean IoU %s %%, pixel accuracy %s %%, %d epochs (%s), %.0f s"
          % (pct(t["mean_iou"]), pct(t["pixel_accuracy"]), t["epochs_run"], t["stop_reason"], t["train_seconds"]))
    print()
    print("| method | " + " | ".join("seed %s" % s for s in seeds)
          + " | mean ± sd | Δ vs %s (paired) | seeds > %s | equal epochs | equal time | epochs | s per run |" % (ref, ref))
    print("|---" * (len(seeds) + 8) + "|")
    for m in methods:
        per = [runs[m][s]["mean_iou"] for s in seeds]
        diff = [runs[m][s]["mean_iou"] - runs[ref][s]["mean_iou"] for s in seeds]
        sd = statistics.stdev(per) if len(per) > 1 else 0.0
        dsd = statistics.stdev(diff) if len(diff) > 1 else 0.0
        epochs = "/".join("%d" % runs[m][s]["epochs_run"] for s in seeds)
        row = [m] + [pct(v) for v in per] + ["%s ± %s" % (pct(statistics.mean(per)), pct(sd))]
        if m == ref:
            row += ["reference", ""]
        else:
            row += ["%+.2f ± %.2f" % (100 * statistics.mean(diff), 100 * dsd), "%d/%d" % (sum(d > 0 for d in diff), len(diff))]
        s = summary[m]
        row += [pct(s["equal_epoch_miou"]), pct(s["equal_time_miou"]), epochs, "%.0f" % s["train_seconds"]]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
