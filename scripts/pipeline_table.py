#!/usr/bin/env python3
"""Prints the accuracy table of a pipeline report (report.json) as Markdown.

usage: pipeline_table.py REPORT.json
Columns: profile, f, images measured, simulated accuracy of the deployed design, bench accuracy with
no compensation, with task-loss and with NTKD compensation, and the share of the hardware loss that
each compensation recovered ((comp - none) / (sim - none)).
"""
import json
import sys


def main(path):
    with open(path) as f:
        r = json.load(f)
    sim = r["deploy"]["simulated_acc"]
    print(f"teacher {100 * r['teacher']['test_acc']:.2f} %, student (own model) {100 * r['student']['test_acc']:.2f} %, "
          f"deployed design (simulated) {100 * sim:.2f} %, kernel correlation {r['deploy']['kernel_correlation_mean']:.3f}")
    print("| profile | f | measured | simulated % | bench none % | task % | NTKD % | recovered task | recovered NTKD |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in r["profiles"]:
        none = p["accuracy"]["none"]
        for row in p["accuracy"]["fractions"]:
            gap = sim - none
            rec = lambda v: f"{100 * (v - none) / gap:.0f} %" if gap > 1e-9 else "—"
            print(f"| {p['profile']} | {100 * row['fraction']:g} % | {row['measured']} | {100 * sim:.2f} | {100 * none:.2f} | "
                  f"{100 * row['task']:.2f} | {100 * row['ntkd']:.2f} | {rec(row['task'])} | {rec(row['ntkd'])} |")


if __name__ == "__main__":
    main(sys.argv[1])
