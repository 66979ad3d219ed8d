"""hilo-train on a lab's own files: a teacher trained (and a student distilled) from a .npy pair, a folder
of PNG images per class and CIFAR-10 binary batches, all generated small here; broken files end the run
with exit code 2 and a message naming the file and the rule; a bad data key with exit code 1. The
segmentation job on scenes composed from a generated ten-class .npy set: its report, models and figures.

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

    def test_segment_job_writes_report_models_and_figures(self):
        rng = np.random.default_rng(5)
        # Ten classes of 28×28 "digits": a bright 14×14 square whose place in a 4×3 grid gives the class.
        y = np.arange(300) % 10
        x = rng.integers(0, 30, (300, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            r, q = 2 * (c // 4) + 4, 2 * (c % 4) + 4
            x[i, r:r + 14, q:q + 14] = 230
        np.save(os.path.join(self.dir, "dx.npy"), x)
        np.save(os.path.join(self.dir, "dy.npy"), y.astype(np.int64))
        data = {"name": "npy", "images": os.path.join(self.dir, "dx.npy"), "labels": os.path.join(self.dir, "dy.npy"),
                "val_size": 40, "test_size": 40}
        train = {"epochs": 2, "batch_size": 8, "threads": 1}
        cfg = {"command": "segment", "data": data,
               "scenes": {"canvas": 32, "train": 40, "validation": 12, "test": 12},
               "teacher": {"channels": [4, 4]}, "teacher_train": train,
               "student": {"kernels": 2, "kernel_size": 3, "width": 4}, "student_train": train,
               "methods": ["none", "kd", "ntkd"], "ntkd": {"rows": 4}, "seeds": [1, 2]}
        p = self.run_job("segment", cfg, "segment")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = os.path.join(self.dir, "out_segment")
        with open(os.path.join(out, "report.json")) as f:
            rep = json.load(f)
        self.assertEqual(len(rep["teacher"]["per_class_iou"]), 11)
        for m in ("none", "kd", "ntkd"):
            s = rep["summary"][m]
            self.assertEqual(len(s["per_seed_miou"]), 2)
            self.assertTrue(0.0 <= s["mean_iou"] <= 1.0)
            for seed in ("1", "2"):
                run = rep["runs"][m][seed]
                self.assertEqual(len(run["val_miou_per_epoch"]), run["epochs_run"])
                self.assertEqual(len(run["test_miou_per_epoch"]), 2)
                self.assertTrue(os.path.getsize(os.path.join(out, "student_%s_seed%s.hilo" % (m, seed))) > 0)
        self.assertIn("ntk_distance_per_epoch", rep["runs"]["ntkd"]["1"])
        with open(os.path.join(out, "teacher.hilo"), "rb") as f:
            self.assertEqual(f.read(8), b"HILOMDL1")
        for png in ("segment.png", "learning_curves.png"):
            with open(os.path.join(out, png), "rb") as f:
                head = f.read(24)
            self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
            w, h = struct.unpack(">II", head[16:24])
            self.assertGreater(w, 100)
            self.assertGreater(h, 100)
        # A bad key ends with exit code 1 and names it.
        p = self.run_job("segment", dict(cfg, methods=["none", "fitnet"]), "segment_bad")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("unknown method 'fitnet'", p.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
