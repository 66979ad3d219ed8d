"""Tests of the installed hilo package against a real daemon.

Environment: HILOD (the daemon executable, required), HILO_CONFIG (its bench config, required).
Run: python -m unittest discover -s scripts/python/tests
"""
from __future__ import annotations

import os
import sys
import tempfile
import unittest

import numpy as np

import hilo
from hilo import Client, HiloError, load_run, load_run_h5
from hilo.testing import Daemon

HILOD = os.environ.get("HILOD", "")
CONFIG = os.environ.get("HILO_CONFIG", "")


@unittest.skipUnless(HILOD and CONFIG, "HILOD and HILO_CONFIG name the daemon and its bench config")
class AgainstHilod(unittest.TestCase):
    d: Daemon

    @classmethod
    def setUpClass(cls) -> None:
        cls.d = Daemon(HILOD, CONFIG)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.d.stop()

    def test_requests_and_errors(self) -> None:
        with self.d.client() as c:
            self.assertEqual(c.ping(), {"pong": True})
            self.assertEqual(c.version()["protocol_version"], hilo.PROTOCOL_VERSION)
            self.assertGreaterEqual(c.stats()["requests"], 2)
            frame = c.grab()
            self.assertEqual(frame.ndim, 2)
            with self.assertRaises(HiloError) as e:
                c.job(999999)
            self.assertEqual(e.exception.code, "not_found")

    def test_run_job_follows_progress_and_documents_and_load_run_reads_the_run(self) -> None:
        progress: list[tuple[int, int]] = []
        docs: list[tuple[str, dict]] = []
        with self.d.client() as c:
            job = c.run_job("capture", {"dataset": "fashion-mnist", "start": 10, "count": 12, "chunk_records": 5},
                            on_progress=lambda done, total: progress.append((done, total)),
                            on_document=lambda name, doc: docs.append((name, doc)))
            self.assertEqual(job["state"], "done", job)
            self.assertEqual(progress[-1], (12, 12))
            self.assertEqual([n for n, _ in docs], ["run.start", "run.descriptor"] + ["run.event"] * 3 + ["run.stop"])
            self.assertEqual(docs[-1][1]["records"], 12)
            manifest, arrays = load_run(c.run(job["run_id"])["path"])
            self.assertEqual(manifest["records"], 12)
            np.testing.assert_array_equal(arrays["indices"], np.arange(10, 22))
            over_protocol = c.run(job["run_id"], arrays=["frames"])["arrays"]["frames"]
            np.testing.assert_array_equal(over_protocol, arrays["frames"])
            keys = docs[1][1]["data_keys"]
            self.assertEqual(keys["frames"]["dtype"], arrays["frames"].dtype.str)

    def test_run_job_refused_raises(self) -> None:
        with self.d.client() as c, self.assertRaises(HiloError) as e:
            c.run_job("capture", {"dataset": "fashion-mnist", "start": -1, "count": 1})
        self.assertEqual(e.exception.code, "bad_argument")


class Installed(unittest.TestCase):
    def test_package_comes_from_the_environment_with_its_type_marker(self) -> None:
        pkg = os.path.dirname(hilo.__file__)
        if os.environ.get("HILO_EXPECT_INSTALLED"):
            self.assertTrue(pkg.startswith(sys.prefix), f"hilo imported from {pkg}, not from {sys.prefix}")
        self.assertTrue(os.path.exists(os.path.join(pkg, "py.typed")))


class LoadRunH5(unittest.TestCase):
    def test_reads_every_dataset_under_entry_data(self) -> None:
        try:
            import h5py
        except ImportError:
            self.skipTest("h5py is not installed")
        frames = np.arange(2 * 3 * 4, dtype="<u2").reshape(2, 3, 4)
        labels = np.array([7, 1], dtype=np.uint8)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "run.h5")
            with h5py.File(path, "w", libver="latest") as f:
                entry = f.create_group("entry")
                entry.attrs["NX_class"] = "NXentry"
                entry.attrs["manifest"] = '{"records": 2, "run_id": "r"}'
                data = entry.create_group("data")
                data.create_dataset("frames", data=frames, maxshape=(None, 3, 4), chunks=(1, 3, 4))
                data.create_dataset("labels", data=labels, maxshape=(None,), chunks=(1,))
            manifest, arrays = load_run_h5(tmp)
            self.assertEqual(manifest, {"records": 2, "run_id": "r"})
            self.assertEqual(set(arrays), {"frames", "labels"})
            np.testing.assert_array_equal(arrays["frames"], frames)
            self.assertEqual(arrays["frames"].dtype, frames.dtype)
            np.testing.assert_array_equal(arrays["labels"], labels)
            with self.assertRaises(KeyError):
                with h5py.File(os.path.join(tmp, "empty.h5"), "w") as f:
                    f.create_group("entry")
                load_run_h5(os.path.join(tmp, "empty.h5"))


if __name__ == "__main__":
    unittest.main()
