"""HDF5 run files against a real hilod (docs/storage.md, "HDF5 run file").

usage: test_hdf5.py HILOD HILOCTL REPO_ROOT
The daemon runs in simulator mode on tests/controller/sim_fast.yaml (zero device latency). Checks:
a capture with "hdf5": true gives a run.h5 that h5py reads bit-equal to the .npy files, with the layout's
attributes; a separate SWMR reader process sees the frames grow while a longer capture runs; a capture
stopped by SIGTERM and continued by the next daemon rebuilds run.h5 equal to the .npy run; runs.export
of a plain run gives an equal file; hiloctl runs get/export; precise errors for bad requests.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

HILOD, HILOCTL, ROOT = sys.argv[1:4]
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo import Client, HiloError, load_run  # noqa: E402
from hilo.testing import Daemon  # noqa: E402

CONFIG = os.path.join(ROOT, "tests", "controller", "sim_fast.yaml")

# Runs in its own process: polls run.h5 with SWMR reads until it holds `n` frames (or 60 s pass) and
# prints the distinct frame counts it saw, each checked against the indices (whole records only).
READER = r"""
import json, sys, time
import h5py, numpy as np
path, n, snap = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen, deadline, f = [], time.monotonic() + 60, None
while f is None and time.monotonic() < deadline:
    try:
        f = h5py.File(path, "r", libver="latest", swmr=True)
        frames, indices = f["entry/data/frames"], f["entry/data/indices"]
    except (OSError, KeyError):
        f = None
        time.sleep(0.005)
while f is not None and time.monotonic() < deadline:
    frames.refresh(); indices.refresh()
    k = frames.shape[0]
    if not seen or k != seen[-1]:
        assert indices.shape[0] >= k, (indices.shape, k)
        np.testing.assert_array_equal(indices[:k], np.arange(k))
        if len(seen) == 1:
            np.save(snap, frames[:k])
        seen.append(k)
    if k >= n:
        break
    time.sleep(0.002)
if f is not None:
    f.close()
print(json.dumps(seen))
"""


def hilod(data, *extra):
    """hilod on the simulated bench with 10-frame chunks, its data in `data`."""
    return Daemon(HILOD, CONFIG, data, ["--chunk-records", "10", *extra], start_timeout_s=60)


def assert_h5_equals_npy(test, run_dir, names=("frames", "inputs", "indices", "labels")):
    manifest, arrays = load_run(run_dir)
    with h5py.File(os.path.join(run_dir, "run.h5"), "r") as f:
        data = f["entry/data"]
        test.assertEqual(sorted(data.keys()), sorted(names))
        for name in names:
            h, a = data[name], arrays[name]
            test.assertEqual(h.dtype, a.dtype, name)
            test.assertEqual(h.shape, a.shape, name)
            test.assertEqual(h[()].tobytes(), a.tobytes(), name)  # bit for bit
            test.assertEqual(h.chunks, (1,) + a.shape[1:], name)
            test.assertEqual(h.maxshape[0], None, name)
        test.assertEqual(data["frames"].attrs["units"], "counts")
        test.assertEqual(data["inputs"].attrs["units"], "levels")
        test.assertTrue(data["labels"].attrs["long_name"])
        test.assertEqual(f.attrs["NX_class"], "NXroot")
        test.assertTrue(f.attrs["creator"].startswith("hilod "))
        test.assertEqual(f.attrs["default"], "entry")
        entry = f["entry"]
        test.assertEqual(entry.attrs["NX_class"], "NXentry")
        test.assertEqual(entry.attrs["run_id"], manifest["run_id"])
        test.assertEqual(entry.attrs["state"], manifest["state"])
        test.assertRegex(entry.attrs["start_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        embedded = json.loads(entry.attrs["manifest"])
        test.assertEqual(embedded["records"], manifest["records"])
        test.assertEqual(data.attrs["signal"], "frames")
        test.assertEqual(entry["instrument/camera"].attrs["name"], manifest["devices"]["camera"])
        test.assertEqual(entry["instrument/input_slm"].attrs["slm_rows"], manifest["placement"]["slm_rows"])
    return manifest


class Hdf5Runs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="hilo_hdf5_")
        cls.data = os.path.join(cls.tmp.name, "data")
        cls.d = hilod(cls.data)
        cls.c = Client(cls.d.commands)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.d.stop()
        cls.tmp.cleanup()

    def run_dir(self, run_id):
        return os.path.join(self.data, run_id)

    def test_capture_with_hdf5_equals_the_npy_run(self):
        rec = self.c.capture(start=0, count=37, split="test", hdf5=True, wait=True, timeout_s=60)
        self.assertEqual(rec["state"], "done", rec)
        self.assertEqual(rec["stats"]["hdf5"], {"file": "run.h5", "complete": True, "records": 37, "error": ""})
        manifest = assert_h5_equals_npy(self, self.run_dir(rec["run_id"]))
        self.assertEqual(manifest["hdf5"]["complete"], True)
        self.assertEqual(manifest["params"]["hdf5"], True)

    def test_a_swmr_reader_process_sees_frames_appear_during_the_capture(self):
        n = 300
        job = self.c.capture(start=0, count=n, split="test", hdf5=True)
        path = os.path.join(self.run_dir(job["run_id"]), "run.h5")
        snap = os.path.join(self.tmp.name, "snapshot.npy")
        reader = subprocess.Popen([sys.executable, "-c", READER, path, str(n), snap], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        rec = self.c.wait(job["job_id"], timeout_s=120)
        out, err = reader.communicate(timeout=90)
        self.assertEqual(reader.returncode, 0, err)
        self.assertEqual(rec["state"], "done", rec)
        seen = json.loads(out)
        growing = [k for k in seen if 0 < k < n]
        print(f"\nSWMR reader saw {len(growing)} counts below {n}: {growing[:5]}...", file=sys.stderr)
        self.assertGreaterEqual(len(growing), 2, f"the reader saw only {seen}")
        self.assertEqual(seen, sorted(seen))
        partial = np.load(snap)
        frames = np.load(os.path.join(self.run_dir(job["run_id"]), "frames.npy"))
        np.testing.assert_array_equal(partial, frames[: partial.shape[0]])
        assert_h5_equals_npy(self, self.run_dir(job["run_id"]))

    def test_export_of_a_plain_run_and_hiloctl_runs_get(self):
        rec = self.c.capture(start=5, count=23, split="train", wait=True, timeout_s=60)
        self.assertEqual(rec["state"], "done", rec)
        run_dir = self.run_dir(rec["run_id"])
        self.assertFalse(os.path.exists(os.path.join(run_dir, "run.h5")))
        out = self.c.call("runs.export", {"run_id": rec["run_id"], "format": "hdf5"})
        self.assertEqual(out["records"], 23)
        manifest = assert_h5_equals_npy(self, run_dir)
        self.assertEqual(manifest["hdf5"]["source"], "runs.export")
        self.assertFalse(os.path.exists(os.path.join(run_dir, "run.h5.tmp")))
        ctl = [HILOCTL, "--endpoint", self.d.commands, "runs"]
        for fmt in ("npy", "hdf5"):
            dest = os.path.join(self.tmp.name, "local-" + fmt)
            r = subprocess.run(ctl + ["get", rec["run_id"], "--out", dest, "--format", fmt], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            for name in ("frames", "inputs", "indices", "labels"):
                ref = np.load(os.path.join(run_dir, name + ".npy"))
                if fmt == "npy":
                    got = np.load(os.path.join(dest, name + ".npy"))
                else:
                    with h5py.File(os.path.join(dest, "run.h5"), "r") as f:
                        got = f["entry/data/" + name][()]
                self.assertEqual(got.dtype, ref.dtype)
                np.testing.assert_array_equal(got, ref)
        r = subprocess.run(ctl + ["export", rec["run_id"]], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["records"], 23)
        r = subprocess.run(ctl + ["get", "no-such-run", "--out", self.tmp.name], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("error not_found: no run with id 'no-such-run'", r.stderr)

    def test_bad_requests_get_precise_errors_and_the_daemon_keeps_running(self):
        rec = self.c.capture(start=0, count=3, split="test", wait=True, timeout_s=60)
        cases = [
            ("runs.export", {"run_id": "no-such-run"}, "not_found", "no run with id 'no-such-run'"),
            ("runs.export", {"run_id": rec["run_id"], "format": "csv"}, "bad_argument",
             "format must be 'hdf5' (runs are stored as .npy already), got 'csv'"),
            ("runs.export", {"run_id": rec["run_id"], "format": 5}, "wrong_type", "args.format"),
            ("runs.export", {}, "missing_field", "run_id"),
            ("runs.export", {"run_id": rec["run_id"], "compress": True}, "bad_argument", "unknown argument 'compress'"),
            ("capture", {"dataset": "fashion-mnist", "start": 0, "count": 2, "hdf5": "yes"}, "wrong_type", "args.hdf5"),
        ]
        for cmd, args, code, text in cases:
            with self.assertRaises(HiloError, msg=f"{cmd} {args}") as cm:
                self.c.call(cmd, args)
            self.assertEqual(cm.exception.code, code, cm.exception.message)
            self.assertIn(text, cm.exception.message)
        self.assertEqual(self.c.ping(), {"pong": True})


class Hdf5Resume(unittest.TestCase):
    def stop_and_continue(self, tmp, n, between):
        """Captures n frames with hilod --hdf5, stops the daemon by SIGTERM mid-capture, calls
        between(run_dir), restarts a daemon without --hdf5 and waits for the job: (record, run_dir)."""
        data = os.path.join(tmp, "data")
        d = hilod(data, "--hdf5")
        with Client(d.commands) as c:
            job = c.capture(start=0, count=n, split="test")  # hdf5 from the daemon's --hdf5
            run_dir = os.path.join(data, job["run_id"])
            deadline = time.monotonic() + 30
            while c.job(job["job_id"])["done"] < 50 and time.monotonic() < deadline:
                time.sleep(0.01)
        self.assertEqual(d.stop(), 0)
        with open(os.path.join(run_dir, "manifest.json")) as f:
            stopped = json.load(f)
        self.assertEqual(stopped["state"], "interrupted")
        self.assertLess(stopped["records"], n)
        between(run_dir)
        d = hilod(data)  # no --hdf5: the job's own params keep it
        with Client(d.commands) as c:
            rec = c.wait(job["job_id"], timeout_s=60)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(rec["state"], "done", rec)
        self.assertEqual(rec["stats"]["resumes"], 1)
        return rec, run_dir

    def test_a_capture_stopped_by_sigterm_rebuilds_run_h5_when_continued(self):
        with tempfile.TemporaryDirectory(prefix="hilo_hdf5_resume_") as tmp:
            _, run_dir = self.stop_and_continue(tmp, 300, lambda run_dir: None)
            manifest = assert_h5_equals_npy(self, run_dir)
            self.assertEqual(manifest["records"], 300)
            self.assertEqual(manifest["hdf5"]["records"], 300)

    def test_an_hdf5_failure_keeps_every_npy_record_and_is_reported(self):
        def block(run_dir):  # the continued capture cannot rebuild run.h5: a directory is in the way
            os.remove(os.path.join(run_dir, "run.h5"))
            os.mkdir(os.path.join(run_dir, "run.h5"))

        with tempfile.TemporaryDirectory(prefix="hilo_hdf5_fail_") as tmp:
            rec, run_dir = self.stop_and_continue(tmp, 300, block)
            manifest, arrays = load_run(run_dir)
            self.assertEqual(manifest["records"], 300)
            np.testing.assert_array_equal(arrays["indices"], np.arange(300))
            for status in (manifest["hdf5"], rec["stats"]["hdf5"]):
                self.assertFalse(status["complete"], status)
                self.assertIn("run.h5: cannot create the HDF5 file (H5F", status["error"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
