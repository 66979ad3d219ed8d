"""Checkpoint and resume of capture jobs across daemon crashes (docs/storage.md, "Resume").

usage: test_resume.py HILOD REPO_ROOT
Runs the real daemon in simulator mode on tests/controller/sim_fast.yaml (zero device latency). A
300-frame Fashion-MNIST (test split) capture is stopped at 21 seeded random instants (20 SIGKILLs and,
in the middle, one SIGTERM), the daemon is restarted on the same data directory after each, and the
job must end with exactly the records an
uninterrupted capture stores: same inputs, same order, none missing, none twice, every frame the
frame of its input.
"""
import gzip
import json
import os
import random
import sys
import tempfile
import time
import unittest

import numpy as np

HILOD, ROOT = sys.argv[1:3]
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo import Client, load_run  # noqa: E402
from hilo.testing import Daemon  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"
CONFIG = os.path.join(ROOT, "tests", "controller", "sim_fast.yaml")


def read_idx(kind):
    with gzip.open(os.path.join(FMNIST, f"t10k-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz")) as f:
        data = f.read()
    if kind == "images":
        return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)
    return np.frombuffer(data, np.uint8, offset=8)


def hilod(data, *extra):
    """hilod on the fast simulated bench with 10-frame chunks, its data in `data`."""
    return Daemon(HILOD, CONFIG, data, ["--chunk-records", "10", *extra], start_timeout_s=60)


def check_readable(run_dir, images, labels):
    """Every record the manifest lists reads back with np.load and belongs to its input."""
    manifest, a = load_run(run_dir)
    n = manifest["records"]
    if n:
        assert a["frames"].shape[0] == n and a["inputs"].shape[0] == n, manifest
        np.testing.assert_array_equal(a["indices"], np.arange(n))
        np.testing.assert_array_equal(a["inputs"], images[:n])
        np.testing.assert_array_equal(a["labels"], labels[:n])
    return n


class ResumeAfterCrashes(unittest.TestCase):
    def test_twenty_sigkills_then_the_job_completes_with_every_frame_once(self):
        n, kills = 300, 20
        rng = random.Random(20240611)
        images, labels = read_idx("images"), read_idx("labels")
        with tempfile.TemporaryDirectory(prefix="hilo_resume_") as tmp:
            data = os.path.join(tmp, "data")
            p = hilod(data)
            with Client(p.commands) as c:
                job = c.capture(start=0, count=n, split="test")
            run_dir = os.path.join(data, job["run_id"])
            seen, killed_mid = [], 0
            for k in range(kills + 1):  # 20 SIGKILLs and, in the middle, one SIGTERM
                time.sleep(rng.uniform(0.0, 0.12))
                if k == kills // 2:  # one clean stop: SIGTERM commits the pending chunk and exits 0
                    self.assertEqual(p.stop(30), 0)
                else:
                    p.kill()
                if os.path.exists(os.path.join(run_dir, "manifest.json")):
                    seen.append(check_readable(run_dir, images, labels))
                    killed_mid += seen[-1] < n
                p = hilod(data)
            with Client(p.commands) as c:
                rec = c.wait(job["job_id"], timeout_s=120)
                self.assertEqual(rec["state"], "done", rec)
                self.assertEqual(rec["done"], n)
                self.assertGreaterEqual(rec["stats"]["resumes"], 1)
                # An uninterrupted capture of the same inputs as the reference for the frames.
                ref = c.capture(start=0, count=n, split="test", wait=True)
                self.assertEqual(ref["state"], "done", ref)
                c.shutdown()
            self.assertEqual(p.wait_exit(30), 0)
            self.assertEqual(seen, sorted(seen))  # progress never goes back
            self.assertGreaterEqual(killed_mid, 10, seen)  # most kills hit the running capture
            manifest, a = load_run(run_dir)
            self.assertEqual(manifest["state"], "done")
            self.assertEqual(manifest["records"], n)
            self.assertGreaterEqual(len(manifest["resumes"]), 1)
            frames = np.load(os.path.join(run_dir, "frames.npy"))
            self.assertEqual(frames.shape, (n, 144, 144))
            np.testing.assert_array_equal(np.load(os.path.join(run_dir, "indices.npy")), np.arange(n))
            np.testing.assert_array_equal(np.load(os.path.join(run_dir, "inputs.npy")), images[:n])
            np.testing.assert_array_equal(np.load(os.path.join(run_dir, "labels.npy")), labels[:n])
            self.assertFalse(os.path.exists(os.path.join(run_dir, "chunks")))
            # Each frame is the frame of its own input: its nearest reference frame (sensor noise
            # differs between runs) is the reference frame of the same index.
            reff = np.load(os.path.join(data, ref["run_id"], "frames.npy")).reshape(n, -1).astype(np.float64)
            f = frames.reshape(n, -1).astype(np.float64)
            d2 = (f * f).sum(1)[:, None] + (reff * reff).sum(1)[None, :] - 2.0 * f @ reff.T
            np.testing.assert_array_equal(d2.argmin(1), np.arange(n))

    def test_a_job_whose_inputs_are_gone_fails_with_the_reason(self):
        with tempfile.TemporaryDirectory(prefix="hilo_resume_") as tmp:
            data = os.path.join(tmp, "data")
            p = hilod(data)
            try:
                with Client(p.commands) as c:
                    job = c.capture(start=0, count=5000, split="test")
                    while c.job(job["job_id"])["done"] < 20:
                        time.sleep(0.01)
            finally:
                p.kill()
            empty = os.path.join(tmp, "no-dataset")
            os.mkdir(empty)
            p = hilod(data, "--fashion-mnist-dir", empty)
            try:
                with Client(p.commands) as c:
                    rec = c.wait(job["job_id"], timeout_s=60)
                    self.assertEqual(rec["state"], "failed")
                    self.assertIn("cannot resume", rec["error"])
                    self.assertIn("inputs unavailable", rec["error"])
                # The run says so too, never "running".
                with open(os.path.join(data, job["run_id"], "manifest.json")) as f:
                    manifest = json.load(f)
                self.assertEqual(manifest["state"], "failed")
                self.assertEqual(manifest["error"], rec["error"])
            finally:
                p.kill()

    def test_a_job_on_a_changed_bench_fails_and_keeps_its_records(self):
        with tempfile.TemporaryDirectory(prefix="hilo_resume_") as tmp:
            data = os.path.join(tmp, "data")
            p = hilod(data)
            try:
                with Client(p.commands) as c:
                    job = c.capture(start=0, count=5000, split="test")
                    # Chunks of 10 commit on a background task; the commit at frame 20 first waits for
                    # the first chunk, so once frame 21 is counted at least 10 records are durable.
                    while c.job(job["job_id"])["done"] < 21:
                        time.sleep(0.01)
            finally:
                p.kill()
            # The same bench with another camera exposure: frames would not be comparable.
            with open(CONFIG) as f:
                cfg = f.read().replace("exposure_ms: 10", "exposure_ms: 12").replace(
                    "../../configs/profiles", os.path.join(os.path.abspath(ROOT), "configs", "profiles"))
            changed = os.path.join(tmp, "changed.yaml")
            with open(changed, "w") as f:
                f.write(cfg)
            q = Daemon(HILOD, changed, data, start_timeout_s=60)
            try:
                with Client(q.commands) as c:
                    rec = c.wait(job["job_id"], timeout_s=60)
                self.assertEqual(rec["state"], "failed")
                self.assertIn("bench changed", rec["error"])
                manifest, a = load_run(os.path.join(data, job["run_id"]))
                self.assertEqual(manifest["state"], "failed")
                self.assertGreaterEqual(manifest["records"], 10)  # the chunk committed before frame 21
                self.assertEqual(a["frames"].shape[0], manifest["records"])
            finally:
                q.kill()


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
