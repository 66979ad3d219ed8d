#!/usr/bin/env python3
"""Prints the accuracy table of a pipeline report (report.json) as Markdown.

usage: pipeline_table.py REPORT.json
Columns: profile, f, images measured, simulated accuracy of the deployed design, bench accuracy with
no compensation, with task-loss and with NTKD compensation, and the share of the hardware loss that
each compensation recovered ((comp - none) / (sim - none)).
Then, for profiles whose stage re-optimised the element (bench.reoptimise_element): the fitted defocus,
the measured kernel correlation with the trained kernels before -> after, the simulated accuracy of
the new element, its bench accuracy with no compensation and with the task / NTKD re-fits, the share
of the hardware loss the re-optimisation alone recovered, and the bench frames it took.
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
    reoptimised(r, sim)


def reoptimised(r, sim):
    done = [p for p in r["profiles"] if "accuracy" in p.get("element_reoptimised", {})]
    if not done:
        return
    print()
    print("element re-optimised | fitted Z4 (waves) | measured kernel corr. | simulated % | bench none % (was) | "
          "recovered by it | task % / NTKD % per f | bench frames |")
    print("|---|---|---|---|---|---|---|---|")
    for p in done:
        e, none = p["element_reoptimised"], p["accuracy"]["none"]
        kc = e["kernel_correlation"]
        gap = sim - none
        rec = f"{100 * (e['accuracy']['none'] - none) / gap:.0f} %" if gap > 1e-9 else "—"
        fr = ", ".join(f"{100 * f['fraction']:g} %: {100 * f['task']:.2f} / {100 * f['ntkd']:.2f}" for f in e["accuracy"]["fractions"])
        print(f"| {p['profile']} | {e['pupil_fit']['zernike_waves'].get('4', 0):.4f} | "
              f"{kc['measured_before']['mean']:.3f} -> {kc['measured_after']['mean']:.3f} | {100 * e['simulated_acc']:.2f} | "
              f"{100 * e['accuracy']['none']:.2f} ({100 * none:.2f}) | {rec} | {fr or '—'} | {e['bench_frames']['total']} |")


if __name__ == "__main__":
    main(sys.argv[1])
