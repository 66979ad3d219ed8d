"""The `defer` command through the real daemon (ZeroMQ, binary parts): a teacher and a student trained
by hilo-train on a small generated dataset in hilod's data directory; feature rows and clean inputs go
in, per-input decisions come out, the least confident share marked deferred with the teacher's class;
a bad request is refused and the daemon keeps serving; `hiloctl defer` sends .npy files as the parts.

usage: test_defer_hilod.py HILOD HILO_TRAIN HILOCTL REPO_ROOT
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

import numpy as np

HILOD, HILO_TRAIN, HILOCTL, ROOT = sys.argv[1:5]
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo import Client, HiloError  # noqa: E402
from hilo.testing import Daemon  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "sim.yaml")
TRAIN = {"epochs": 1, "batch_size": 16, "threads": 1}


def model_arrays(path):
    """{name: shape} of a hilo model file (docs/distill.md: magic, header length, JSON header)."""
    with open(path, "rb") as f:
        assert f.read(8) == b"HILOMDL1"
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {a["name"]: a["shape"] for a in header["arrays"]}


def train_models(test, tmp, size, teacher_arch):
    """A teacher (teacher_arch) and a KD student trained by hilo-train on 60 generated size x size images
    of 3 classes in <tmp>/d/own; returns (data dir, the images, the student's feature width)."""
    data = os.path.join(tmp, "d")
    os.makedirs(os.path.join(data, "own"))
    rng = np.random.default_rng(2)
    y = np.arange(60) % 3
    x = (rng.integers(0, 60, (60, size, size)) + 90 * y[:, None, None]).astype(np.uint8)
    np.save(os.path.join(data, "own", "x.npy"), x)
    np.save(os.path.join(data, "own", "y.npy"), y)
    ds = {"name": "npy", "images": os.path.join(data, "own", "x.npy"), "labels": os.path.join(data, "own", "y.npy")}
    for cmd, cfg in (("train-teacher", {"arch": teacher_arch}),
                     ("distill", {"teacher": os.path.join(data, "models", "teacher.hilo"),
                                  "student": {"kernels": 2, "kernel_size": 3}, "distill": {"method": "kd"}})):
        path = os.path.join(tmp, cmd + ".json")
        with open(path, "w") as f:
            json.dump(dict(cfg, command=cmd, data=ds, train=TRAIN, out_dir=os.path.join(data, "models")), f)
        p = subprocess.run([HILO_TRAIN, cmd, path], capture_output=True, text=True, timeout=120)
        test.assertEqual(p.returncode, 0, p.stderr)
    return data, x, model_arrays(os.path.join(data, "models", "student.hilo"))["backend.feature_offset"][1]


class Defer(unittest.TestCase):
    def test_decisions_through_the_daemon(self):
        with tempfile.TemporaryDirectory(prefix="hilo_defer_") as tmp:
            data, x, dim = train_models(self, tmp, 8, {"channels": [4], "hidden": 16})
            rng = np.random.default_rng(2)
            features = rng.normal(size=(20, dim)).astype(np.float32)
            d = Daemon(HILOD, CONFIG, data, ["--virtual-time"], start_timeout_s=60)
            try:
                with Client(d.commands) as c:
                    self.assertIn("defer", c.version()["commands"])
                    r = c.call("defer", {"student": "models/student.hilo", "teacher": "models/teacher.hilo", "rate": 0.25},
                               arrays={"features": features, "inputs": x[:20]})
                    self.assertEqual((r["count"], r["deferred"]), (20, 5), r)
                    conf = np.array([row["confidence"] for row in r["decisions"]])
                    flags = np.array([row["deferred"] for row in r["decisions"]])
                    self.assertEqual(set(np.argsort(conf)[:5]), set(np.flatnonzero(flags)))
                    for row in r["decisions"]:
                        self.assertIsNotNone(row["class"])
                        if not row["deferred"]:
                            self.assertEqual(row["class"], row["model_class"])
                    r = c.call("defer", {"student": "models/student.hilo", "threshold": 1.0}, arrays={"features": features})
                    self.assertEqual(r["deferred"], 20)
                    self.assertTrue(all(row["class"] is None for row in r["decisions"]))
                    with self.assertRaises(HiloError) as e:
                        c.call("defer", {"student": "models/student.hilo", "rate": 0.1}, arrays={"features": features[:, :-1]})
                    self.assertEqual(e.exception.code, "bad_argument")
                    self.assertIn("args.features", str(e.exception))
                    with self.assertRaises(HiloError) as e:
                        c.call("defer", {"student": "../student.hilo", "rate": 0.1}, arrays={"features": features})
                    self.assertEqual(e.exception.code, "forbidden_path")
                    self.assertTrue(c.ping()["pong"])
                np.save(os.path.join(tmp, "f.npy"), features)
                np.save(os.path.join(tmp, "x.npy"), x[:20])
                ctl = [HILOCTL, "--endpoint", d.commands, "defer", "--student", "models/student.hilo",
                       "--features", os.path.join(tmp, "f.npy")]
                p = subprocess.run(ctl + ["--teacher", "models/teacher.hilo", "--inputs", os.path.join(tmp, "x.npy"),
                                          "--rate", "0.25"], capture_output=True, text=True, timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(json.loads(p.stdout)["deferred"], 5)
                p = subprocess.run(ctl + ["--threshold", "1.5"], capture_output=True, text=True, timeout=60)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("error bad_argument: args.threshold must be in [0, 1]", p.stderr)
                # Raw frames reach the daemon as the "frames" part; this student names no bench calibration.
                np.save(os.path.join(tmp, "frames.npy"), np.zeros((3, 16, 16), np.uint16))
                frames = [HILOCTL, "--endpoint", d.commands, "defer", "--student", "models/student.hilo",
                          "--frames", os.path.join(tmp, "frames.npy"), "--rate", "0.5"]
                p = subprocess.run(frames, capture_output=True, text=True, timeout=60)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("error missing_field: args.calibration", p.stderr)
                p = subprocess.run(frames + ["--calibration", "own/none", "--counts-per-unit", "3"], capture_output=True,
                                   text=True, timeout=60)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("error not_found: the bench calibration", p.stderr)
            finally:
                self.assertEqual(d.stop(60), 0)

    def test_other_requests_are_answered_while_a_defer_computes(self):
        """A defer of 32,768 inputs through a [16, 32]-channel teacher on 28 x 28 images takes seconds;
        meanwhile the daemon answers daemon.stats (which sees it computing) and ping from another client,
        before the defer's own reply. On the I/O thread (the old way) neither could be answered until the
        defer had finished. A shutdown while a defer computes still answers it."""
        n = 32768
        with tempfile.TemporaryDirectory(prefix="hilo_defer_") as tmp:
            data, x, dim = train_models(self, tmp, 28, {"channels": [16, 32], "hidden": 128})
            rng = np.random.default_rng(3)
            features = rng.normal(size=(n, dim)).astype(np.float32)
            inputs = np.resize(x, (n, 28, 28))
            args = {"student": "models/student.hilo", "teacher": "models/teacher.hilo", "rate": 0.125}
            d = Daemon(HILOD, CONFIG, data, ["--virtual-time"], start_timeout_s=60)
            try:
                for shutdown in (False, True):
                    done = {}

                    def big():
                        with Client(d.commands, timeout_ms=300000) as c:
                            t0 = time.monotonic()
                            done["reply"] = c.call("defer", args, arrays={"features": features, "inputs": inputs})
                            done["t"] = time.monotonic()
                            print(f"defer of {n} inputs: {done['t'] - t0:.2f} s", file=sys.stderr)

                    worker = threading.Thread(target=big)
                    worker.start()
                    with Client(d.commands) as c:
                        deadline = time.monotonic() + 120
                        while c.stats()["computing"] == 0:
                            self.assertNotIn("t", done, "the defer ended before the daemon was seen computing it")
                            self.assertLess(time.monotonic(), deadline, "the defer never started computing")
                            time.sleep(0.005)
                        if shutdown:
                            self.assertTrue(c.shutdown()["shutting_down"])
                        else:
                            self.assertTrue(c.ping()["pong"])
                        answered = time.monotonic()
                    worker.join(300)
                    self.assertIn("reply", done)
                    self.assertLess(answered, done["t"], "answered only after the defer")
                    self.assertEqual((done["reply"]["count"], done["reply"]["deferred"]), (n, n // 8))
                self.assertEqual(d.wait_exit(60), 0)
            finally:
                d.stop(60)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
