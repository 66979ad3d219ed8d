"""Dataset paths in daemon job configs, through the real daemon (ZeroMQ): every path a job's `data` can
carry (images, labels, test files, dir, fashion_dir, mnist_dir) must resolve inside the data directory.
'..', an absolute path outside and a symbolic link out are refused with forbidden_path naming the key;
the daemon keeps serving; a path inside is accepted and read by the job.

usage: test_job_paths_hilod.py HILOD REPO_ROOT
"""
import os
import sys
import tempfile
import unittest

HILOD, ROOT = sys.argv[1:3]
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo import Client, HiloError  # noqa: E402
from hilo.testing import Daemon  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "sim.yaml")
TRAIN = {"epochs": 1, "batch_size": 64}


class JobPaths(unittest.TestCase):
    def test_escapes_are_refused_naming_the_key_and_a_path_inside_is_read(self):
        with tempfile.TemporaryDirectory(prefix="hilo_paths_") as tmp:
            data = os.path.join(tmp, "d")
            outside = os.path.join(tmp, "outside")
            os.makedirs(os.path.join(outside, "digits"))
            os.makedirs(os.path.join(data, "mnist", "digits"))
            os.symlink(outside, os.path.join(data, "out_link"))
            d = Daemon(HILOD, CONFIG, data, ["--virtual-time"], start_timeout_s=60)
            try:
                with Client(d.commands) as c:
                    cases = (("train-teacher", {"name": "mnist", "mnist_dir": "../outside/digits"}, "mnist_dir"),
                             ("train-teacher", {"name": "mnist", "mnist_dir": os.path.join(outside, "digits")}, "mnist_dir"),
                             ("train-teacher", {"name": "mnist", "mnist_dir": "out_link/digits"}, "mnist_dir"),
                             ("train-teacher", {"name": "fashion-mnist", "fashion_dir": "out_link"}, "fashion_dir"),
                             ("pipeline", {"name": "cifar10-bin", "dir": "out_link"}, "dir"),
                             ("pipeline", {"name": "npy", "images": "../outside/x.npy", "labels": "y.npy"}, "images"))
                    for cmd, dataset, key in cases:
                        cfg = {"data": dataset, "train": TRAIN} if cmd == "train-teacher" else {"data": dataset}
                        with self.assertRaises(HiloError) as e:
                            c.call(cmd, {"config": cfg})
                        self.assertEqual(e.exception.code, "forbidden_path", (cmd, dataset, str(e.exception)))
                        self.assertIn("config.data." + key, str(e.exception))
                    self.assertEqual(c.jobs(), [])
                    self.assertTrue(c.ping()["pong"])
                    job = c.call("train-teacher", {"config": {"data": {"name": "mnist", "mnist_dir": "mnist/digits"},
                                                              "train": TRAIN}})
                    rec = c.wait(job["job_id"], timeout_s=60)
                    self.assertEqual(rec["state"], "failed", rec)  # the folder holds no digits
                    self.assertIn(os.path.join(data, "mnist", "digits"), rec["error"])
            finally:
                self.assertEqual(d.stop(60), 0)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
