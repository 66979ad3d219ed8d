"""hilo-train on a lab's own files: a teacher trained (and a student distilled) from a .npy pair, a folder
of PNG images per class and CIFAR-10 binary batches, all generated small here; broken files end the run
with exit code 2 and a message naming the file and the rule; a bad data key with exit code 1.

usage: test_hilo_train_files.py HILO_TRAIN
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest
import zlib
import struct

import numpy as np

HILO_TRAIN = sys.argv[1]
TRAIN = {"epochs": 1, "batch_size": 16, "threads": 1}
ARCH = {"channels": [4], "hidden": 16}


def write_png(path, img):
    """A minimal PNG writer (8-bit grey or RGB, no filter), so the test needs no imaging package."""
    h, w = img.shape[:2]
    colour = 2 if img.ndim == 3 else 0
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class HiloTrainFiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="hilo_train_files_")
        self.dir = self.tmp.name
        rng = np.random.default_rng(3)
        # Two classes told apart by brightness: 60 grey 8×8 images.
        self.y = np.arange(60) % 2
        self.x = (rng.integers(0, 60, (60, 8, 8)) + 150 * self.y[:, None, None]).astype(np.uint8)

    def tearDown(self):
        self.tmp.cleanup()

    def run_job(self, command, cfg, name):
        path = os.path.join(self.dir, name + ".json")
        with open(path, "w") as f:
            json.dump(dict(cfg, out_dir=os.path.join(self.dir, "out_" + name)), f)
        return subprocess.run([HILO_TRAIN, command, path], capture_output=True, text=True, timeout=300)

    def teacher(self, data, name):
        p = self.run_job("train-teacher", {"command": "train-teacher", "data": data, "arch": ARCH, "train": TRAIN}, name)
        return p

    def test_npy_pair_trains_a_teacher_and_distils_a_student(self):
        np.save(os.path.join(self.dir, "x.npy"), self.x)
        np.save(os.path.join(self.dir, "y.npy"), self.y.astype(np.int64))
        data = {"name": "npy", "images": os.path.join(self.dir, "x.npy"), "labels": os.path.join(self.dir, "y.npy")}
        p = self.teacher(data, "npy")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertTrue(os.path.exists(out["model"]))
        p = self.run_job("distill", {"command": "distill", "teacher": out["model"], "data": data, "train": TRAIN,
                                     "student": {"kernels": 2, "kernel_size": 3}, "distill": {"method": "kd"}}, "npy_student")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(json.loads(p.stdout)["model"]))

    def test_png_folder_trains_a_teacher_on_rgb(self):
        for i in range(40):
            d = os.path.join(self.dir, "png", ["dark", "light"][self.y[i]])
            os.makedirs(d, exist_ok=True)
            write_png(os.path.join(d, f"{i}.png"), np.repeat(self.x[i][:, :, None], 3, axis=2))
        p = self.teacher({"name": "png-folder", "dir": os.path.join(self.dir, "png"), "color": "rgb"}, "png")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(json.loads(p.stdout)["model"]))
        with open(os.path.join(self.dir, "png", "dark", "broken.png"), "wb") as f:
            f.write(b"not a png")
        p = self.teacher({"name": "png-folder", "dir": os.path.join(self.dir, "png")}, "png_broken")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("broken.png", p.stderr)

    def test_cifar10_binary_batches_train_a_teacher(self):
        d = os.path.join(self.dir, "cifar")
        os.makedirs(d)
        rng = np.random.default_rng(4)
        for name, n in (("data_batch_1.bin", 40), ("test_batch.bin", 20)):
            labels = (np.arange(n) % 2).astype(np.uint8)
            pixels = (rng.integers(0, 60, (n, 3 * 32 * 32)) + 150 * labels[:, None]).astype(np.uint8)
            with open(os.path.join(d, name), "wb") as f:
                f.write(np.concatenate([labels[:, None], pixels], axis=1).tobytes())
        p = self.teacher({"name": "cifar10-bin", "dir": d, "color": "rgb"}, "cifar")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(d, "test_batch.bin"), "ab") as f:
            f.write(b"\x01" * 100)  # a truncated record
        p = self.teacher({"name": "cifar10-bin", "dir": d}, "cifar_broken")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("test_batch.bin", p.stderr)

    def test_broken_files_and_keys_are_refused_precisely(self):
        np.save(os.path.join(self.dir, "x.npy"), self.x)
        np.save(os.path.join(self.dir, "y50.npy"), self.y[:50].astype(np.int64))
        np.save(os.path.join(self.dir, "x2d.npy"), self.x.reshape(60, 64))
        data = {"name": "npy", "images": os.path.join(self.dir, "x.npy"), "labels": os.path.join(self.dir, "y50.npy")}
        p = self.teacher(data, "count")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("50 labels for 60 images", p.stderr)
        p = self.teacher(dict(data, images=os.path.join(self.dir, "x2d.npy")), "shape")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("x2d.npy", p.stderr)
        p = self.teacher(dict(data, images=os.path.join(self.dir, "none.npy")), "missing")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("none.npy", p.stderr)
        p = self.teacher(dict(data, imgaes="x.npy"), "key")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("imgaes", p.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
