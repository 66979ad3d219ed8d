"""hiloctl against a real hilod (simulated bench): every subcommand, its exit code and its error messages.

usage: test_hiloctl.py HILOD HILOCTL
Exit codes: 0 ok, 1 hilod answered with an error (or a followed job did not end done), 2 local failure,
> 100 a bad command line (CLI11).
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "python"))
from hilo.testing import Daemon  # noqa: E402

HILOD, HILOCTL = sys.argv[1:3]


class Hiloctl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="hilo_ctl_")
        cls.data = os.path.join(cls.tmp.name, "data")
        cls.d = Daemon(HILOD, os.path.join(HERE, "sim_fast.yaml"), cls.data, heartbeat_s=0.1)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.tmp.cleanup()

    def ctl(self, *args, rc=0, timeout=120):
        p = subprocess.run([HILOCTL, "--endpoint", self.d.commands, "--events", self.d.events, *args],
                           capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, rc, f"hiloctl {' '.join(args)}:\n{p.stdout}\n{p.stderr}")
        return p

    def ok_json(self, *args):
        return json.loads(self.ctl(*args).stdout)

    def error(self, code, *args):
        p = self.ctl(*args, rc=1)
        self.assertIn(f"error {code}: ", p.stderr)
        return p.stderr

    def file(self, name, array=None):
        path = os.path.join(self.tmp.name, name)
        if array is not None:
            np.save(path, array)
        return path

    def test_ping_version_shutdown_target(self):
        self.assertIn("pong from", self.ctl("ping").stdout)
        v = self.ok_json("version")
        self.assertEqual(v["protocol_version"], 1)
        self.assertIn("runs.get", v["commands"])

    def test_devices_list_status_configure(self):
        self.assertEqual(self.ok_json("devices")["devices"][1]["role"], "camera")
        self.assertEqual(self.ok_json("devices", "list")["devices"][0]["role"], "input_slm")
        self.assertIn("in_use", self.ok_json("devices", "status"))
        cam = self.ok_json("devices", "configure", "--gain-db", "0", "--trigger-mode", "free_run")["camera"]
        self.assertEqual((cam["gain_db"], cam["trigger_mode"]), (0, "free_run"))
        self.assertEqual(self.ok_json("devices", "configure", "--trigger-mode", "software")["camera"]["trigger_mode"], "software")
        # the simulated camera's exposure is fixed by its config: the device's refusal reaches the user
        self.assertIn("exposure is fixed", self.error("bad_argument", "devices", "configure", "--exposure-ms", "2.5"))
        self.assertIn("exposure_ms must be in (0, 60000]", self.error("bad_argument", "devices", "configure", "--exposure-ms", "-1"))
        self.assertIn("mono9", self.error("bad_argument", "devices", "configure", "--pixel-format", "mono9"))
        self.error("missing_field", "devices", "configure")
        self.assertGreater(self.ctl("devices", "frobnicate", rc=109).returncode, 100)

    def test_slm_show(self):
        self.assertTrue(self.ok_json("slm", "show", self.file("p.npy", np.full((28, 28), 200, np.uint8)))["shown"])
        self.assertIn("pattern is 10x10, the SLM is 28x28",
                      self.error("bad_argument", "slm", "show", self.file("small.npy", np.zeros((10, 10), np.uint8))))
        self.assertIn("hiloctl: ", self.ctl("slm", "show", self.file("absent.npy"), rc=2).stderr)

    def test_camera_grab_to_npy_and_png(self):
        self.ctl("camera", "grab", "--out", self.file("f.npy"))
        f = np.load(self.file("f.npy"))
        self.assertEqual((f.shape, f.dtype), ((144, 144), np.uint16))
        self.ctl("grab", "--out", self.file("f.png"))
        with open(self.file("f.png"), "rb") as fh:
            self.assertEqual(fh.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertIn("must end in .npy or .png", self.ctl("camera", "grab", "--out", self.file("f.txt"), rc=2).stderr)
        self.assertIn("--out is required", self.ctl("camera", "grab", rc=106).stderr)

    def test_capture_jobs_and_runs(self):
        p = self.ctl("capture", "--start", "0", "--count", "40", "--chunk-records", "10")
        job = json.loads(p.stdout)["job"]
        self.assertEqual((job["state"], job["done"], job["total"]), ("done", 40, 40))
        self.assertRegex(p.stderr, r"\] 40/40 \(100%\)")
        run = job["run_id"]
        self.assertEqual(self.ok_json("jobs", "status", str(job["job_id"]))["job"]["run_id"], run)
        self.assertIn(run, [j["run_id"] for j in self.ok_json("jobs", "list", "--limit", "5")["jobs"]])
        self.assertIn(run, [j["run_id"] for j in self.ok_json("jobs")["jobs"]])
        self.assertIn(run, [r["run_id"] for r in self.ok_json("runs")["runs"]])
        self.assertIn(run, [r["run_id"] for r in self.ok_json("runs", "list")["runs"]])
        self.assertEqual(self.ok_json("runs", "get", run)["manifest"]["records"], 40)
        out = os.path.join(self.tmp.name, "run_out")
        self.ctl("runs", "get", run, "--out", out)
        self.assertEqual(sorted(os.listdir(out)), ["frames.npy", "indices.npy", "inputs.npy", "labels.npy", "manifest.json"])
        self.assertEqual(np.load(os.path.join(out, "frames.npy")).shape, (40, 144, 144))
        np.testing.assert_array_equal(np.load(os.path.join(out, "indices.npy")), np.arange(40))
        self.ctl("runs", "get", run, "--arrays", "labels", "--out", os.path.join(self.tmp.name, "labels_only"))
        self.assertEqual(os.listdir(os.path.join(self.tmp.name, "labels_only")).count("labels.npy"), 1)
        self.error("not_found", "runs", "get", "no-such-run")
        self.error("not_found", "runs", "get", run, "--arrays", "nope", "--out", os.path.join(self.tmp.name, "x"))
        self.error("not_found", "jobs", "status", "9999")
        self.error("not_found", "jobs", "cancel", "9999")
        self.error("not_found", "cancel", "9999")
        # cancel a queued-then-running job; it ends cancelled (or done if it was that quick)
        q = self.ok_json("capture", "--start", "0", "--count", "2000", "--no-wait")
        c = self.ok_json("jobs", "cancel", str(q["job_id"]))["job"]
        self.assertEqual(c["job_id"], q["job_id"])

    def test_capture_from_inputs_and_bad_input(self):
        os.makedirs(os.path.join(self.data, "inputs"), exist_ok=True)
        np.save(os.path.join(self.data, "inputs", "set.npy"), np.zeros((3, 28, 28), np.uint8))
        self.assertEqual(json.loads(self.ctl("capture", "--inputs-npy", "inputs/set.npy").stdout)["job"]["done"], 3)
        self.error("forbidden_path", "capture", "--inputs-npy", "../set.npy")
        self.assertIn("needs --start and --count", self.ctl("capture", rc=106).stderr)
        self.assertIn("requires --count", self.ctl("capture", "--start", "0", rc=107).stderr)

    def test_capture_of_a_labs_own_dataset_file(self):
        own = os.path.join(self.data, "own")
        os.makedirs(own, exist_ok=True)
        np.save(os.path.join(own, "x.npy"), np.full((10, 28, 28), 7, np.uint8))
        np.save(os.path.join(own, "y.npy"), np.arange(10) % 2)
        np.save(os.path.join(own, "y3.npy"), np.arange(3))
        spec = self.file("own.json")
        with open(spec, "w") as f:
            json.dump({"name": "npy", "images": "own/x.npy", "labels": "own/y.npy", "test_size": 4}, f)
        job = json.loads(self.ctl("capture", "--dataset-file", spec, "--split", "test", "--start", "0",
                                  "--count", "4").stdout)["job"]
        self.assertEqual((job["state"], job["done"]), ("done", 4), job)
        self.assertEqual(job["params"]["dataset"]["images"], os.path.join(self.data, "own", "x.npy"))
        # A broken dataset: 3 labels for 10 images; the job fails with the loader's message.
        with open(spec, "w") as f:
            json.dump({"name": "npy", "images": "own/x.npy", "labels": "own/y3.npy"}, f)
        p = self.ctl("capture", "--dataset-file", spec, "--start", "0", "--count", "2", rc=1)
        self.assertIn("3 labels for 10 images", p.stdout + p.stderr)
        with open(spec, "w") as f:
            json.dump({"name": "npy", "images": "../x.npy", "labels": "own/y.npy"}, f)
        self.assertIn("args.dataset.images", self.error("forbidden_path", "capture", "--dataset-file", spec, "--start", "0",
                                                        "--count", "2"))
        self.assertIn("requires --start", self.ctl("capture", "--dataset-file", spec, rc=107).stderr)

    def test_job_commands_refuse_bad_configs(self):
        bad = self.file("bad.json")
        with open(bad, "w") as f:
            json.dump({"train": {"epochs": 0, "colour": 1}}, f)
        self.error("bad_argument", "train-teacher", "--config", bad)
        self.error("missing_field", "distill", "--config", bad)
        self.error("bad_argument", "pipeline", "--job", bad, "--no-wait")
        self.assertIn("hiloctl: ", self.ctl("pipeline", "--job", self.file("absent.yaml"), rc=2).stderr)
        self.assertIn("--config is required", self.ctl("distill", rc=106).stderr)

    def test_train_teacher_follows_progress_with_rate_and_eta(self):
        cfg = self.file("teacher.json")
        with open(cfg, "w") as f:
            json.dump({"data": {"train_limit": 3000, "val_size": 200}, "arch": {"channels": [4], "hidden": 16},
                       "train": {"epochs": 4, "batch_size": 20, "threads": 1}}, f)
        p = self.ctl("train-teacher", "--config", cfg)
        job = json.loads(p.stdout)["job"]
        self.assertEqual(job["state"], "done")
        self.assertRegex(p.stderr, r"\d+\.\d/s ETA \d+:\d\d")
        self.assertTrue(os.path.exists(os.path.join(self.data, job["run_id"], "teacher.hilo")))

    def test_zz_shutdown_stops_the_daemon(self):
        self.assertTrue(self.ok_json("shutdown")["shutting_down"])
        self.assertEqual(self.d.proc.wait(20), 0)
        p = self.ctl("--timeout-ms", "300", "ping", rc=2)
        self.assertIn("no reply within 300 ms", p.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
