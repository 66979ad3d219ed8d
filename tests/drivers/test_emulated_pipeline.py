"""The pipeline through the emulated lab, against the simulator-mode run of the same profile and seeds.

usage: test_emulated_pipeline.py HILOD HILO_EMULATOR REPO_ROOT   (hilo-pipeline is taken from HILOD's folder)

Runs the pipeline job with the --quick settings (configs/pipeline-quick.yaml) twice, both through hilod:
  1. on configs/emulated-lab.yaml: Xvfb with the two monitors, hilo-emulator rendering the moderate
     as-built profile, the display SLMs and the GenICam driver (bench.profiles: [], one stage "bench");
  2. on configs/sim.yaml with --virtual-time, bench.profiles: [moderate] (the same design optics, the
     same as-built profile, the same job seed).
The two runs go at the same time, each with its own hilod (the simulator run and its re-fits on a thread):
the emulated run spends most of its wall time waiting for settle times, exposures and readouts, and the
simulator run on the virtual clock gives the same result whatever else the machine does.
Teacher, student, deployed element, measured subset (indices) and re-fit seeds are the same on both; the
bench stages differ only in what the two benches do (sensor-noise draws, real against virtual time for
the drift, the display path). Compared, on 2000 test images, within 1.5 points (the issue's bound):
  - "none" (the deployed backend on the measured test features), from the two tables;
  - each compensated cell (task, NTKD) as the mean of 8 re-fits on each bench's stored measurements
    (hilo-pipeline sweep with the run's own options: the pipeline's own seeds, shown to reproduce the
    table's re-fits exactly, and seeds 1..6), not the table's single re-fit.
Why the mean: a re-fit of the quick job's backend on 200 measured images depends on its seed more than
on the bench. On one simulator run's features the 8 seeds give NTKD 79.85-82.90 % and task 78.50-82.30 %,
and the same seed on the two benches' features (equal within noise) goes its own way: the single-seed
difference is a difference of two random re-fits. Measured (3 emulated runs, emulator noise seeds 1, 2,
3, against one simulator run, which the virtual clock makes deterministic; quick job, 2000 test images):
  - the features: rms(emulated - simulator) 0.01232 on the test set, the same as between two emulator
    noise draws (0.01228; feature spread 0.077): no difference beyond the noise. The subset, measured
    last, is 0.5 % dimmer on the emulator (real-time gain drift, -0.74 % against -0.19 % on the virtual
    clock, below the 2 % drift threshold); dividing it out moves the re-fits by 0.02-0.03 points. The
    NTKD offset seen with earlier learning settings (NTKD 0.4-1.4 points lower) did not recur.
  - the tables' single re-fits, emulated - simulator: none +0.55/+0.70/+0.05, task +0.30/-0.85/-1.00,
    NTKD +1.10/-0.55/+0.45 points. Over the 24 pairs (3 runs x 8 seeds) of same-seed re-fits: task mean
    -0.38, sd 0.76 (1 of 24 beyond 1.5 points: -1.70), NTKD mean -0.28, sd 0.60 (none beyond); about one
    test run in ten would fail the single-cell comparison by chance, as about one in six did.
  - the 8-seed means, emulated - simulator: task -0.19/-0.61/-0.34, NTKD +0.01/-0.74/-0.11 points: the
    largest is half the bound (three runs do not pin down the tail).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import yaml

HILOD, EMULATOR, ROOT = sys.argv[1:4]
sys.argv = sys.argv[:4]  # test_emulated_lab reads the same positions
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_emulated_lab import CONFIG, Client, Daemon, Lab  # noqa: E402

PIPELINE_TOOL = os.path.join(os.path.dirname(HILOD), "hilo-pipeline")  # built next to hilod
SIM_CONFIG = os.path.join(ROOT, "configs", "sim.yaml")
QUICK = os.path.join(ROOT, "configs", "pipeline-quick.yaml")
TOLERANCE = 0.015
REFIT_SEEDS = 8  # re-fits per compensated cell, the pipeline's own seeds among them
TEST_IMAGES = 2000  # see the module comment
VAL_IMAGES = 200
PIPELINE_TIMEOUT_S = 600  # one pipeline run; the emulated one took 171-461 s on the loaded shared machine


def quick_job(**bench):
    with open(QUICK) as f:
        job = yaml.safe_load(f)
    job["data"]["val_size"] = VAL_IMAGES
    job["bench"].update(bench)
    return job


def run_pipeline(config, hilod_args, data, job, env=None):
    """Starts hilod (our environment plus `env`), runs the pipeline job to its end, stops hilod; returns
    (job record, report, seconds). Safe to call from two threads at once (it changes no process state)."""
    d = Daemon(HILOD, config, os.path.join(data, "data"), list(hilod_args), heartbeat_s=0.1,
               env=dict(os.environ, **(env or {})))
    c = Client(d.commands)
    try:
        t0 = time.monotonic()
        rec = c.pipeline(job, wait=True, timeout_s=PIPELINE_TIMEOUT_S)
        elapsed = time.monotonic() - t0
    finally:
        c.close()
        rc = d.stop()
    if rec["state"] != "done":
        raise AssertionError(f"pipeline ended {rec['state']}: {rec.get('error')}\n{d.stderr()[-3000:]}")
    if rc != 0:
        raise AssertionError(f"hilod exited {rc}\n{d.stderr()[-3000:]}")
    with open(os.path.join(data, "data", rec["run_id"], "report.json")) as f:
        return rec, json.load(f), elapsed


def stage_seed(seed, stage):
    """controller/pipeline.hpp's stage_seed."""
    return (seed * 1000003 + stage * 7919 + 17) % 2**64


def model_header(path):
    """The JSON header of a hilo model file (docs/distill.md: magic, header length, header)."""
    with open(path, "rb") as f:
        assert f.read(8) == b"HILOMDL1", path
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def run_seed(run_dir):
    with open(os.path.join(run_dir, "config.json")) as f:
        return json.load(f)["seed"]


def refit_seeds(run_dir, report):
    """The seeds the pipeline's one bench stage re-fitted with (task, then NTKD, per fraction, largest
    first), then small ones up to REFIT_SEEDS in all."""
    n = len(report["profiles"][0]["accuracy"]["fractions"])
    own = [stage_seed(run_seed(run_dir), 300 + step) for step in range(2 * n)]
    return own + [s for s in range(1, REFIT_SEEDS + 1)][: max(0, REFIT_SEEDS - len(own))]


def refit_means(run_dir, profile, seeds):
    """{(fraction, mode): {"mean", "at_pipeline_seed"}} of the run's task and NTKD re-fits on its stored
    measurements, one per seed (hilo-pipeline sweep: the run's own compensation options, no devices),
    without the held-out guard; "at_pipeline_seed" is the re-fit with the seed the pipeline used."""
    with open(os.path.join(run_dir, "config.json")) as f:
        comp = json.load(f)["compensation"]
    grid = os.path.join(run_dir, "refit_grid.json")
    with open(grid, "w") as f:
        json.dump({"task": comp["task"], "ntkd": comp["ntkd"]}, f)
    out = subprocess.run([PIPELINE_TOOL, "--out", run_dir, "sweep", "--profile", profile, "--grid", grid,
                          "--seeds", *map(str, seeds)], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise AssertionError(f"hilo-pipeline sweep failed: {out.stderr[-2000:]}")
    rows = json.loads(out.stdout)["rows"]
    fractions = sorted({r["fraction"] for r in rows}, reverse=True)
    res = {}
    for r in rows:
        k = (r["fraction"], r["name"])
        res.setdefault(k, {"all": []})["all"].append(r["accuracy"])
        step = 2 * fractions.index(r["fraction"]) + (r["name"] == "ntkd")
        if r["seed"] == stage_seed(run_seed(run_dir), 300 + step):
            res[k]["at_pipeline_seed"] = r["accuracy"]
    for v in res.values():
        v["mean"] = sum(v["all"]) / len(v["all"])
    return res


def table(report):
    """{(fraction, column): accuracy} of the report's one bench stage."""
    (p,) = report["profiles"]
    rows = {("-", "none"): p["accuracy"]["none"]}
    for r in p["accuracy"]["fractions"]:
        for col in ("task", "ntkd"):
            rows[(r["fraction"], col)] = r[col]
    return rows


class Background(threading.Thread):
    """fn() on a thread of its own, started at once; result() joins it and returns fn's value or raises
    what fn raised."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.value, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.value = self.fn()
        except BaseException as e:  # handed to result()
            self.error = e

    def result(self, timeout_s):
        self.join(timeout_s)
        if self.is_alive():
            raise AssertionError(f"the simulator-mode side did not end within {timeout_s} s")
        if self.error is not None:
            raise self.error
        return self.value


def simulator_side(sim_dir):
    """The simulator-mode run and its re-fits: (job record, report, seconds, re-fit seeds, re-fit means)."""
    rec, report, seconds = run_pipeline(SIM_CONFIG, ["--virtual-time"], sim_dir,
                                        quick_job(profiles=["moderate"], test_images=TEST_IMAGES))
    run = os.path.join(sim_dir, "data", rec["run_id"])
    seeds = refit_seeds(run, report)
    return rec, report, seconds, seeds, refit_means(run, "moderate", seeds)


class PipelineThroughTheEmulatedLab(unittest.TestCase):
    def test_quick_pipeline_matches_the_simulator_run(self):
        with tempfile.TemporaryDirectory(prefix="hilo_emu_pipeline_") as tmp:
            # The simulator-mode run (virtual clock: its result does not depend on the machine's load) runs
            # beside the emulated one, which spends most of its wall time waiting for settle times and
            # exposures; one after the other they took the sum of both.
            sim_dir = os.path.join(tmp, "sim")
            os.makedirs(sim_dir)
            sim_side = Background(lambda: simulator_side(sim_dir))
            try:
                lab_dir = os.path.join(tmp, "lab")
                os.makedirs(lab_dir)
                lab = Lab(lab_dir)
                try:
                    rec_lab, lab_report, lab_s = run_pipeline(CONFIG, [], lab_dir,
                                                              quick_job(profiles=[], test_images=TEST_IMAGES),
                                                              env={"DISPLAY": lab.env["DISPLAY"]})
                    rendered = len([e for e in lab.frames() if e.get("delivered")])
                finally:
                    lab.stop()
                lab_run = os.path.join(lab_dir, "data", rec_lab["run_id"])
                # The guard's chosen model of every fraction is saved on the hardware path too, readable,
                # and says what it is.
                for row in lab_report["profiles"][0]["accuracy"]["fractions"]:
                    meta = model_header(os.path.join(lab_run, "bench", "bench", row["guarded_model"]))["meta"]
                    self.assertEqual(meta["compensated"]["mode"], row["guarded_mode"], row)
                    self.assertEqual(meta["compensated"]["fraction"], row["fraction"], row)
                seeds = refit_seeds(lab_run, lab_report)
                lab_refits = refit_means(lab_run, "bench", seeds)
            finally:  # the thread's daemon and sweep work in tmp: never leave it before they end
                sim_side.join(2 * PIPELINE_TIMEOUT_S)
            rec_sim, sim_report, sim_s, sim_seeds, sim_refits = sim_side.result(0)
        self.assertEqual(seeds, sim_seeds, "the two runs re-fitted with different seeds")

        # The hardware run went through the emulator's camera, frame by frame, on the real clock.
        self.assertEqual([p["profile"] for p in lab_report["profiles"]], ["bench"])
        self.assertGreater(rendered, lab_report["profiles"][0]["test_images"])
        self.assertNotIn("ground_truth_at_end", lab_report["profiles"][0])  # no simulator behind it
        # Every frame of the measurement passed the frame gate and, after the calibration, the content
        # check against the calibrated design model; their counts are in the report.
        integrity = lab_report["profiles"][0]["frame_integrity"]
        rejected_or_failed = sum(integrity[k] for k in ("gap_frames", "out_of_order", "early_frames", "show_errors",
                                                        "grab_errors", "content_rejects"))
        self.assertEqual(integrity["regrabs"], rejected_or_failed, integrity)  # each cost one more show + grab
        self.assertTrue(integrity["content_check"]["active"], integrity)
        # No fault injected: the emulator imaged every input as shown, so the check rejects nothing.
        self.assertEqual(integrity["content_rejects"], 0, integrity)
        self.assertEqual(lab_report["deploy"], sim_report["deploy"])  # same seeds, same element
        lab_t, sim_t = table(lab_report), table(sim_report)
        self.assertEqual(lab_t.keys(), sim_t.keys())
        print(f"emulated lab {lab_s:.0f} s ({rendered} frames rendered), simulator {sim_s:.0f} s")
        print(f"  frame integrity on the emulated lab: {integrity}")
        for k in lab_t:
            print(f"  table {k[0]!s:>5} {k[1]:>5}: emulated {100 * lab_t[k]:6.2f} %, simulator {100 * sim_t[k]:6.2f} %, "
                  f"difference {100 * (lab_t[k] - sim_t[k]):+.2f} points")
        # The sweep re-fits what the pipeline re-fitted: at the pipeline's own seed it gives the table's
        # re-fit accuracy (before the held-out guard) exactly, on both benches.
        for report, refits in ((lab_report, lab_refits), (sim_report, sim_refits)):
            for row in report["profiles"][0]["accuracy"]["fractions"]:
                for mode in ("task", "ntkd"):
                    self.assertEqual(refits[(row["fraction"], mode)]["at_pipeline_seed"], row[mode + "_refit"],
                                     f"{report['profiles'][0]['profile']} {mode}: the sweep is not the pipeline's re-fit")
        compared = {("-", "none"): (lab_t[("-", "none")], sim_t[("-", "none")])}
        for k in lab_refits:
            compared[k] = (lab_refits[k]["mean"], sim_refits[k]["mean"])
            print(f"  mean of {len(seeds)} re-fits {k[0]!s:>5} {k[1]:>5}: emulated {100 * compared[k][0]:6.2f} %, "
                  f"simulator {100 * compared[k][1]:6.2f} %, difference {100 * (compared[k][0] - compared[k][1]):+.2f} points")
        for k, (lab_v, sim_v) in compared.items():
            self.assertLessEqual(abs(lab_v - sim_v), TOLERANCE, f"{k}: emulated {lab_v}, simulator {sim_v}")
        self.assertEqual(rec_lab["state"], "done")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
