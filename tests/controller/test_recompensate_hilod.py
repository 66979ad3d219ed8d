"""Drift re-compensation from the twin through a real hilod (docs/protocol.md, recompensate): a small
pipeline on the simulated bench of configs/sim.yaml with a copy of the moderate profile whose slow shift
drift is fast (the as-built drift model), then the recompensate job on the finished run: it adopts the
run's saved calibration (its drift check against the saved reference sees the drift since the pipeline
calibrated), calibrates again, rebuilds the twin, re-fits the backend without measuring the training
subset again, and scores the holdout before and after; the full job runs through `hiloctl recompensate`.
Also: its progress events, a cancel while it runs, and the refusals (no twin, missing run, missing
profile, a config key it may not change).

usage: test_recompensate_hilod.py HILOD REPO_ROOT
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HILOD, ROOT = sys.argv[1:3]
HILOCTL = os.path.join(os.path.dirname(HILOD), "hiloctl")
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo import Client, HiloError  # noqa: E402
from hilo.testing import Daemon  # noqa: E402

DRIFT_PX_PER_S = 0.1  # shift drift of the test's profile (moderate: 0.001)
HOLDOUT = 100
PIPELINE = {
    "data": {"name": "mnist", "train_limit": 600},
    "teacher": {"train": {"epochs": 1, "batch_size": 64, "optimizer": {"kind": "adam", "lr": 0.003}}},
    "student": {"train": {"epochs": 2, "batch_size": 64, "optimizer": {"kind": "adam", "lr": 0.003}},
                "distill": {"method": "kd"}},
    "deploy": {"gs_iterations": 20, "adam_iterations": 60, "design_refit_epochs": 2},
    "bench": {"profiles": ["drifting"], "test_images": HOLDOUT, "drift_every": 200, "drift_action": "report",
              "reoptimise_element": {"enabled": False}, "drift_recompensate": {"holdout_images": HOLDOUT}},
    "measure": {"fractions": [0.2]},
    "compensation": {"task": {"epochs": 2}, "ntkd": {"epochs": 2, "ntk_subbatch": 8},
                     "twin_task": {"epochs": 2}, "twin_ntkd": {"epochs": 1, "ntk_subbatch": 8}},
}


def bench_config(tmp):
    """configs/sim.yaml with the profile "drifting": moderate with its shift drift DRIFT_PX_PER_S."""
    os.makedirs(os.path.join(tmp, "profiles"))
    with open(os.path.join(ROOT, "configs", "profiles", "moderate.yaml")) as f:
        prof = f.read()
    prof = re.sub(r"name: moderate", "name: drifting", prof)
    prof = re.sub(r"shift_x_px_per_s: [-0-9.e]+", f"shift_x_px_per_s: {DRIFT_PX_PER_S}", prof)
    prof = re.sub(r"shift_y_px_per_s: [-0-9.e]+", f"shift_y_px_per_s: {-DRIFT_PX_PER_S / 2}", prof)
    with open(os.path.join(tmp, "profiles", "drifting.yaml"), "w") as f:
        f.write(prof)
    with open(os.path.join(ROOT, "configs", "sim.yaml")) as f:
        bench = f.read().replace("profiles/moderate.yaml", "profiles/drifting.yaml")
    path = os.path.join(tmp, "bench.yaml")
    with open(path, "w") as f:
        f.write(bench)
    return path


class Recompensate(unittest.TestCase):
    def test_recompensation_job_on_a_drifted_bench(self):
        with tempfile.TemporaryDirectory(prefix="hilo_recomp_") as tmp:
            data = os.path.join(tmp, "d")
            d = Daemon(HILOD, bench_config(tmp), data, ["--virtual-time"], start_timeout_s=60)
            try:
                with Client(d.commands, events=d.events) as c:
                    c.subscribe("job.")
                    pipe = c.call("pipeline", {"config": PIPELINE})
                    rec = c.wait(pipe["job_id"], timeout_s=300)
                    self.assertEqual(rec["state"], "done", rec)
                    run = pipe["run_id"]
                    with open(os.path.join(data, run, "bench", "drifting", "result.json")) as f:
                        result = json.load(f)
                    self.assertIsNotNone(result["twin"])
                    self.assertNotIn("recompensation", result, "bench.drift_recompensate is off in the pipeline")

                    # Refusals, each naming what is wrong; the daemon serves on.
                    notwin = "notwin"
                    shutil.copytree(os.path.join(data, run), os.path.join(data, notwin))
                    res = os.path.join(data, notwin, "bench", "drifting", "result.json")
                    result_nt = dict(result, twin=None)  # what a stage with bench.kernels off writes
                    with open(res, "w") as f:
                        json.dump(result_nt, f)
                    for args, code, words in (
                        ({"run": notwin, "profile": "drifting"}, "bad_argument", "has no twin"),
                        ({"run": "nope", "profile": "drifting"}, "not_found", "run"),
                        ({"run": "../x", "profile": "drifting"}, "forbidden_path", "run"),
                        ({"run": run}, "missing_field", "profile"),
                        ({"run": run, "profile": "moderate"}, "not_found", "bench/moderate/result.json"),
                        ({"run": run, "profile": "drifting", "config": {"seed": 3}}, "bad_argument", "config.seed"),
                        ({"run": run, "profile": "drifting", "config": {"bench": {"drift_recompensate": {"refit": "x"}}}},
                         "bad_argument", "bench.drift_recompensate.refit"),
                    ):
                        with self.assertRaises(HiloError, msg=args) as e:
                            c.call("recompensate", args)
                        self.assertEqual(e.exception.code, code, f"{args}: {e.exception}")
                        self.assertIn(words, str(e.exception))
                    self.assertIn("recompensate", c.version()["commands"])

                    # A cancel while it runs ends it cancelled.
                    job = c.call("recompensate", {"run": run, "profile": "drifting"})
                    deadline = time.monotonic() + 120
                    while time.monotonic() < deadline:
                        ev = c.next_event(timeout_ms=1000)
                        if (ev and ev[0] == "job.progress" and ev[1].get("job_id") == job["job_id"]
                                and ev[1].get("stats", {}).get("stage", "").endswith("recompensate")):
                            break
                    else:
                        self.fail("the recompensate job never reached its re-compensation")
                    c.cancel(job["job_id"])
                    self.assertEqual(c.wait(job["job_id"], timeout_s=120)["state"], "cancelled")

                    # The job to its end through `hiloctl recompensate`, with its progress events.
                    cli = subprocess.Popen([HILOCTL, "--endpoint", d.commands, "--events", d.events, "--timeout-ms", "60000",
                                            "recompensate", "--run", run, "--profile", "drifting"],
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    stages = []
                    deadline = time.monotonic() + 180
                    while time.monotonic() < deadline and cli.poll() is None:
                        ev = c.next_event(timeout_ms=1000)
                        if ev and ev[0] == "job.progress":
                            st = ev[1].get("stats", {}).get("stage")
                            if st and (not stages or stages[-1] != st):
                                stages.append(st)
                    out_text, err_text = cli.communicate(timeout=60)
                    self.assertEqual(cli.returncode, 0, err_text)
                    m = re.search(r"job (\d+) -> run (\S+)", err_text)
                    self.assertIsNotNone(m, err_text)
                    final = c.job(int(m.group(1)))
                    self.assertEqual(json.loads(out_text)["job"]["job_id"], final["job_id"])
                    job = {"job_id": final["job_id"], "run_id": m.group(2)}
                    self.assertEqual(final["state"], "done", final)
                    self.assertIn("bench drifting: recompensate", stages)
                    out = os.path.join(data, job["run_id"], "recompensation", "drifting")
                    with open(os.path.join(out, "event.json")) as f:
                        ev = json.load(f)
                    for f in ("student.hilo", "calibration/calibration.json", "frame_log.npy"):
                        self.assertTrue(os.path.exists(os.path.join(out, f)), f)
                    self.assertEqual(final["stats"]["accuracy"], ev["accuracy"])
                    # The drift since the pipeline's calibration passed the 0.5 px threshold.
                    self.assertTrue(ev["drift"]["exceeded"], ev["drift"])
                    self.assertGreater(ev["drift"]["displacement_px"], 0.5)
                    # measured_rows "auto" and the run's drift_action "report": its subset was measured
                    # through a calibration the bench was leaving, so the re-fit leaves it out.
                    self.assertEqual(ev["measured_rows"], "exclude")
                    self.assertEqual(ev["measured_images"], 0)
                    self.assertEqual(ev["holdout_images"], HOLDOUT)
                    self.assertLess(ev["frames"]["total"],
                                    2 * HOLDOUT + ev["frames"]["calibration"] + ev["frames"]["kernel_probes"] + 200,
                                    "the training subset was measured again")
                    # Stale against re-compensated on the same n = HOLDOUT images: a difference of two
                    # independent accuracies has a standard error of at most sqrt(2 * 0.25 / n) = 0.071;
                    # the re-compensation must beat the stale calibration by 3 of those (0.21).
                    bound = 3 * math.sqrt(2 * 0.25 / HOLDOUT)
                    acc = ev["accuracy"]
                    print(f"recompensate job: drift {ev['drift']['displacement_px']:.2f} px, accuracy {acc}, "
                          f"frames {ev['frames']}", file=sys.stderr)
                    self.assertGreater(acc["after"], acc["before"] + bound, acc)
            finally:
                self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
