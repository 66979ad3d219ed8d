"""The pipeline through the emulated lab, against the simulator-mode run of the same profile and seeds.

usage: test_emulated_pipeline.py HILOD HILO_EMULATOR REPO_ROOT

Runs the pipeline job with the --quick settings (configs/pipeline-quick.yaml) twice, both through hilod:
  1. on configs/emulated-lab.yaml: Xvfb with the two monitors, hilo-emulator rendering the moderate
     as-built profile, the display SLMs and the GenICam driver (bench.profiles: [], one stage "bench");
  2. on configs/sim.yaml with --virtual-time, bench.profiles: [moderate] (the same design optics, the
     same as-built profile, the same job seed).
Teacher, student and deployed element are computed from the same seeds on both, so they are the same;
the bench stages differ only in what the two benches do (sensor noise draws, real against virtual
time for the drift, display quantisation). The accuracy table of (1) — no compensation, task and NTKD
compensation at each fraction, on 500 test images — must be within 1.5 points of (2), row by row.
"""
import json
import os
import sys
import tempfile
import time
import unittest

import yaml

HILOD, EMULATOR, ROOT = sys.argv[1:4]
sys.argv = sys.argv[:4]  # test_emulated_lab reads the same positions
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_emulated_lab import CONFIG, Client, Daemon, Lab  # noqa: E402

SIM_CONFIG = os.path.join(ROOT, "configs", "sim.yaml")
QUICK = os.path.join(ROOT, "configs", "pipeline-quick.yaml")
TOLERANCE = 0.015
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
    """Starts hilod, runs the pipeline job to its end, stops hilod; returns (job record, report, seconds)."""
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        d = Daemon(HILOD, config, os.path.join(data, "data"), list(hilod_args), heartbeat_s=0.1,
                   env=dict(os.environ))
    finally:
        os.environ.clear()
        os.environ.update(old)
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


def table(report):
    """{(fraction, column): accuracy} of the report's one bench stage."""
    (p,) = report["profiles"]
    rows = {("-", "none"): p["accuracy"]["none"]}
    for r in p["accuracy"]["fractions"]:
        for col in ("task", "ntkd"):
            rows[(r["fraction"], col)] = r[col]
    return rows


class PipelineThroughTheEmulatedLab(unittest.TestCase):
    def test_quick_pipeline_matches_the_simulator_run(self):
        with tempfile.TemporaryDirectory(prefix="hilo_emu_pipeline_") as tmp:
            lab_dir = os.path.join(tmp, "lab")
            os.makedirs(lab_dir)
            lab = Lab(lab_dir)
            try:
                rec_lab, lab_report, lab_s = run_pipeline(CONFIG, [], lab_dir, quick_job(profiles=[], test_images=TEST_IMAGES),
                                                          env={"DISPLAY": lab.env["DISPLAY"]})
                rendered = len([e for e in lab.frames() if e.get("delivered")])
            finally:
                lab.stop()
            sim_dir = os.path.join(tmp, "sim")
            os.makedirs(sim_dir)
            _, sim_report, sim_s = run_pipeline(SIM_CONFIG, ["--virtual-time"], sim_dir,
                                                quick_job(profiles=["moderate"], test_images=TEST_IMAGES))

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
            print(f"  {k[0]!s:>5} {k[1]:>5}: emulated {100 * lab_t[k]:6.2f} %, simulator {100 * sim_t[k]:6.2f} %, "
                  f"difference {100 * (lab_t[k] - sim_t[k]):+.2f} points")
        for k in lab_t:
            self.assertLessEqual(abs(lab_t[k] - sim_t[k]), TOLERANCE, f"{k}: emulated {lab_t[k]}, simulator {sim_t[k]}")
        self.assertEqual(rec_lab["state"], "done")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
