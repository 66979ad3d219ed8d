"""End-to-end tests of hilod as a process, through the Python client (scripts/python/hilo).

usage: test_client.py HILOD HILOD_TESTBENCH REPO_ROOT
  HILOD            the real daemon, run in simulator mode on tests/controller/sim_fast.yaml (configs/sim.yaml
                   with zero device latency)
  HILOD_TESTBENCH  the same daemon code over the test-double devices (fast, controllable timing)
"""
import gzip
import json
import os
import sqlite3
import sys
import time
import unittest

import numpy as np

HILOD, TESTBENCH, ROOT = sys.argv[1:4]
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo import HiloError, load_run  # noqa: E402
from hilo.testing import Daemon  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(kind):
    with gzip.open(os.path.join(FMNIST, f"train-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz")) as f:
        data = f.read()
    if kind == "images":
        return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)
    return np.frombuffer(data, np.uint8, offset=8)


def daemon(exe, *extra):
    """`exe` (hilod or the test-double daemon) on the fast simulated bench, in a temporary data directory."""
    return Daemon(exe, os.path.join(ROOT, "tests", "controller", "sim_fast.yaml"), extra=extra)


class SimulatorMode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = daemon(HILOD)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_keeps_serving_after_every_bad_request(self):
        with self.d.client(timeout_ms=10000) as c:
            bad = [
                [b"\xff\x00garbage\x81"],
                [b"{not json"],
                [b"[1, 2, 3]"],
                [json.dumps({"id": 1}).encode()],
                [json.dumps({"id": 1, "cmd": "no.such"}).encode()],
                [json.dumps({"id": 1, "cmd": "jobs.status", "args": {"job_id": "x"}}).encode()],
                [json.dumps({"id": 1, "cmd": "ping"}).encode(), b"stray"],
                [json.dumps({"id": 1, "cmd": "ping", "args": {"pad": "x" * (2 << 20)}}).encode()],
            ]
            expect = ["malformed_json", "malformed_json", "not_an_object", "missing_field", "unknown_command",
                      "wrong_type", "bad_parts", "too_large"]
            for frames, code in zip(bad, expect):
                reply = json.loads(c.request_raw(frames)[0])
                self.assertFalse(reply["ok"])
                self.assertEqual(reply["error"]["code"], code)
                self.assertEqual(c.ping(), {"pong": True})
            with self.assertRaises(HiloError) as e:
                c.show(np.zeros((3, 3), np.uint8))
            self.assertEqual(e.exception.code, "bad_argument")
            self.assertEqual(c.version()["protocol_version"], 1)

    def test_a_fresh_daemon_grabs_the_dark_frame_then_light_after_a_bright_input(self):
        # Regression: a grab before any input had been shown failed with "no input set".
        fresh = daemon(HILOD)
        try:
            with fresh.client() as c:
                dark = c.grab().astype(np.float64)
                self.assertEqual(dark.shape, (144, 144))
                c.show(np.full((28, 28), 255, np.uint8))
                light = c.grab().astype(np.float64)
                self.assertGreater(light.mean(), dark.mean() + 10 * dark.std())
        finally:
            fresh.stop()

    def test_heartbeats_arrive_on_the_event_socket(self):
        with self.d.client() as c:
            c.subscribe("heartbeat")
            ev = c.next_event(timeout_ms=5000)
            self.assertIsNotNone(ev)
            self.assertEqual(ev[0], "heartbeat")
            self.assertEqual(ev[1]["protocol_version"], 1)

    def test_captures_fashion_mnist_and_reads_it_back_with_numpy(self):
        n = int(os.environ.get("HILO_TEST_CAPTURE_COUNT", "1000"))
        images, labels = read_idx("images"), read_idx("labels")
        progress = []
        with self.d.client() as c:
            dev = {d["role"]: d for d in c.devices()}
            job = c.capture(start=1000, count=n, wait=True, on_progress=lambda done, total: progress.append(done))
            self.assertEqual(job["state"], "done", job)
            self.assertEqual(job["done"], n)
            self.assertTrue(progress and progress[-1] == n and progress == sorted(progress))
            run = c.run(job["run_id"], arrays=["frames", "inputs", "labels", "indices"])
        a = run["arrays"]
        cam = dev["camera"]
        self.assertEqual(a["frames"].shape, (n, cam["height_px"], cam["width_px"]))
        np.testing.assert_array_equal(a["inputs"], images[1000:1000 + n])
        np.testing.assert_array_equal(a["labels"], labels[1000:1000 + n])
        np.testing.assert_array_equal(a["indices"], np.arange(1000, 1000 + n))
        # The same arrays straight from disk with np.load.
        manifest, disk = load_run(run["path"])
        self.assertEqual(manifest["state"], "done")
        frames = np.load(os.path.join(run["path"], "frames.npy"))
        np.testing.assert_array_equal(frames, a["frames"])
        np.testing.assert_array_equal(disk["inputs"], images[1000:1000 + n])
        # Frames carry the inputs: brighter inputs give brighter frames (optics + noise preserve order
        # of total energy for these very different images).
        energy_in = images[1000:1000 + n].reshape(n, -1).sum(1).astype(float)
        energy_out = frames.reshape(n, -1).astype(float).sum(1)
        self.assertGreater(np.corrcoef(energy_in, energy_out)[0, 1], 0.9)
        self.assertTrue(os.path.exists(os.path.join(run["path"], "preview_frames.png")))


class ProcessLifecycle(unittest.TestCase):
    def test_sigterm_during_capture_exits_cleanly_and_keeps_completed_frames(self):
        d = daemon(TESTBENCH, "--grab-delay-ms", "4", "--chunk-records", "25")
        try:
            with d.client() as c:
                job = c.capture(start=0, count=2000)
                while c.job(job["job_id"])["done"] < 110:
                    time.sleep(0.02)
            self.assertEqual(d.terminate(30), 0)
            db = sqlite3.connect(os.path.join(d.data, "catalog.sqlite"))
            state, done, err = db.execute("SELECT state, done, error FROM jobs WHERE id=?", (job["job_id"],)).fetchone()
            (run_state,) = db.execute("SELECT state FROM runs WHERE id=?", (job["run_id"],)).fetchone()
            db.close()
            self.assertEqual(state, "interrupted")
            self.assertEqual(run_state, "interrupted")
            self.assertIn("shut down", err)
            self.assertGreaterEqual(done, 110)
            self.assertLess(done, 2000)
            manifest, arrays = load_run(os.path.join(d.data, job["run_id"]))
            self.assertEqual(manifest["state"], "interrupted")
            self.assertEqual(manifest["records"], done)
            self.assertEqual(arrays["frames"].shape[0], done)
            # Test-double camera: frame = 3 * placed input + 7 (32x32 SLM, input at scale 1, centred).
            images = read_idx("images")[:done]
            placed = np.zeros((done, 32, 32), np.uint16)
            placed[:, 2:30, 2:30] = images
            np.testing.assert_array_equal(arrays["frames"], 3 * placed + 7)
        finally:
            d.stop()

    def test_restart_after_a_crash_marks_the_unfinished_job_interrupted(self):
        d = daemon(TESTBENCH, "--grab-delay-ms", "4", "--chunk-records", "10")
        try:
            with d.client() as c:
                job = c.capture(start=0, count=2000)
                while c.job(job["job_id"])["done"] < 40:
                    time.sleep(0.02)
            d.proc.kill()  # a crash: no chance to flush anything
            d.proc.wait(10)
            manifest, arrays = load_run(os.path.join(d.data, job["run_id"]))
            self.assertEqual(manifest["state"], "running")
            self.assertGreaterEqual(manifest["records"], 30)  # every committed chunk is readable
            self.assertEqual(arrays["frames"].shape[0], manifest["records"])
            p = Daemon(TESTBENCH, "none", d.data, ["--no-resume"])
            try:
                with p.client() as c:
                    rec = c.job(job["job_id"])
                    self.assertEqual(rec["state"], "interrupted")
                    c.shutdown()
                self.assertEqual(p.wait_exit(30), 0)
            finally:
                p.stop()
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
