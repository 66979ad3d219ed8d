#!/usr/bin/env python3
"""Prints the accuracy table of a pipeline report (report.json) as Markdown.

usage: pipeline_table.py REPORT.json
Columns: profile, f, images measured, simulated accuracy of the deployed design, bench accuracy with
no compensation, with task-loss and with NTKD compensation (backend re-fit on the measured fraction),
with the twin-calibrated re-fits (twin task, twin NTKD: twin features of the whole training split plus
the measured fraction), the re-optimised element alone and with the same four re-fits on it (bench.reoptimise_element.compensate),
physics-aware fine-tuning of that element (bench.reoptimise_element.physics_aware, smallest fraction only),
that element trained through its model on the training split (bench.reoptimise_element.twin_train),
the guarded choice (the best of all on the measured validation splits) and which mode it chose, the share
of the hardware loss the guarded choice recovered ((guarded - none) / (sim - none)), and the bench frames
the chosen mode used beyond the uncompensated bench (measured subset, + kernel probes for the twin modes,
+ the new element's calibration for the element modes; the guard's validation frames separately).
Reports without a mode print "-" there.
Then per profile: the measured kernels' correlation with the design and the twin's residual on the
measured validation split beside the design model's.
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
    modes = [("task", "task"), ("ntkd", "NTKD"), ("twin_task", "twin task"), ("twin_ntkd", "twin NTKD"),
             ("element", "element"), ("element_task", "element task"), ("element_ntkd", "element NTKD"),
             ("element_twin_task", "element twin task"), ("element_twin_ntkd", "element twin NTKD"),
             ("physics_aware", "physics-aware"), ("twin_trained", "element twin-trained")]
    print("| profile | f | measured | simulated % | bench none % | " + " | ".join(f"{h} %" for _, h in modes) +
          " | guarded % | chosen | recovered (guarded) | frames (chosen) | frames guard |")
    print("|---" * (len(modes) + 10) + "|")
    pc = lambda row, k: f"{100 * row[k]:.2f}" if k in row else "-"
    for p in r["profiles"]:
        none = p["accuracy"]["none"]
        for row in p["accuracy"]["fractions"]:
            gap = sim - none
            g = row.get("guarded", row["ntkd"])
            rec = f"{100 * (g - none) / gap:.0f} %" if gap > 1e-9 else "—"
            fr = row.get("frames", {})
            chosen = row.get("guarded_mode", "-")
            print(f"| {p['profile']} | {100 * row['fraction']:g} % | {row['measured']} | {100 * sim:.2f} | {100 * none:.2f} | "
                  + " | ".join(pc(row, k) for k, _ in modes) +
                  f" | {pc(row, 'guarded')} | {chosen} | {rec} | {fr.get(chosen, '-')} | {fr.get('guard', '-')} |")
    for p in r["profiles"]:
        t = p.get("twin")
        if not t:
            continue
        k, res = t["kernels"], t.get("residual", {})
        print(f"{p['profile']}: measured kernels (support {k['support']}, {k['frames']} probe frames) correlate "
              f"{k['mean_correlation']:.3f} with the design; on {res.get('images', 0)} measured validation images the twin's "
              f"relative rms error is {res.get('twin', float('nan')):.4f}, the design model's {res.get('design', float('nan')):.4f}")
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
