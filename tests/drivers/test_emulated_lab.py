"""The instrument path end to end on the emulated lab (docs/devices.md, "Rehearsing with the emulator").

usage: test_emulated_lab.py HILOD HILO_EMULATOR REPO_ROOT [N_CAPTURE]

Each test class starts its own Xvfb (a 192x112 screen split into the two XRandR monitors of
configs/emulated-lab.yaml), hilo-emulator on that config and, where needed, hilod on the same config,
and stops them all, also on failure. Checks:
  - Aravis' own arv-camera-test-0.8 acquires from the emulator, free-running and software-triggered;
  - through the real GenICam driver (hilod's devices.configure, slm.show, camera.grab), a frame changes
    as the camera model says when exposure or gain is written: the dark-subtracted signal doubles with
    twice the exposure and grows by 10^(6/20) with 6 dB of gain;
  - a capture of N Fashion-MNIST images through hilod: every stored frame is, byte for byte, a frame the
    emulator logged, and the input that frame imaged (CRC-32 in the log) is the stored input; labels are
    the dataset's;
  - the same capture with a slow SLM on 5 % of grabs and 2 % dropped frames: nothing misattributed, the
    content check's rejections equal the slow frames it judged and the gap rejections the drops, and every
    frame the emulator sent is stored, a dark reference, or counted as rejected.
"""
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

import numpy as np

HILOD, EMULATOR, ROOT = sys.argv[1:4]
N_CAPTURE = int(sys.argv[4]) if len(sys.argv) > 4 else 500
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo import Client, HiloError, load_run  # noqa: E402
from hilo.testing import Daemon  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "emulated-lab.yaml")
PROFILE = os.path.join(ROOT, "configs", "profiles", "moderate.yaml")


def read_text(path):
    with open(path) as f:
        return f.read()


class Peer:
    """A child process that dies with this one (SIGTERM on stop, SIGKILL after 5 s)."""

    def __init__(self, argv, env=None, log=None, **kw):
        self.log = open(log, "w") if log else subprocess.DEVNULL
        self.p = subprocess.Popen(argv, env=env, stdout=self.log, stderr=self.log, **kw)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()
        return self.p.returncode


class Lab:
    """Xvfb with the two monitors, and the emulator on configs/emulated-lab.yaml."""

    def __init__(self, tmp, *emulator_args):
        self.tmp = tmp
        self.peers = []
        try:
            r, w = os.pipe()
            xvfb = Peer(["Xvfb", "-displayfd", str(w), "-screen", "0", "192x112x24", "-nolisten", "tcp", "-noreset"],
                        pass_fds=(w,))
            self.peers.append(xvfb)
            os.close(w)
            number = b""
            while not number.endswith(b"\n"):
                c = os.read(r, 1)
                if not c:
                    raise RuntimeError("Xvfb did not start")
                number += c
            os.close(r)
            self.env = dict(os.environ, DISPLAY=":" + number.decode().strip())
            for name, geometry in (("HILO-INPUT", "112/112x112/112+0+0"), ("HILO-ELEMENT", "64/64x64/64+128+0")):
                subprocess.run(["xrandr", "--setmonitor", name, geometry, "none"], env=self.env, check=True)
            self.log = os.path.join(tmp, "frames.jsonl")
            self.emulator_log = os.path.join(tmp, "emulator.txt")
            self.emulator = Peer([EMULATOR, "--bench", CONFIG, "--profile", PROFILE, "--log", self.log, *emulator_args],
                                 env=self.env, log=self.emulator_log)
            self.peers.append(self.emulator)
            deadline = time.monotonic() + 10
            while "serving" not in read_text(self.emulator_log):
                if self.emulator.p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("hilo-emulator did not start: " + read_text(self.emulator_log))
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise

    def lines(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def frames(self):
        """One entry per due frame (delivered or not)."""
        return [e for e in self.lines() if "event" not in e]

    def events(self):
        return [e for e in self.lines() if "event" in e]

    def stop(self):
        for p in reversed(self.peers):
            p.stop()
        self.peers = []


def fashion_mnist_train(n):
    """The first n Fashion-MNIST training images (uint8, n×28×28) and labels, from the IDX files."""
    root = os.environ.get("HILO_DATASETS") or "/usr/share/datasets"
    base = os.path.join(root, "fashion-mnist")
    with gzip.open(os.path.join(base, "train-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16)[: n * 784].reshape(n, 28, 28)
    with gzip.open(os.path.join(base, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return images, labels


def crc(a):
    return zlib.crc32(np.ascontiguousarray(a).tobytes())


class ArvCameraTest(unittest.TestCase):
    """Aravis' own test tool acquires from the emulator."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="hilo_emu_arv_")
        cls.lab = Lab(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.lab.stop()
        cls.tmp.cleanup()

    def acquire(self, *args):
        r = subprocess.run(["arv-camera-test-0.8", "-n", "127.0.0.1", "--duration=1", *args], capture_output=True,
                           text=True, timeout=20, env=self.lab.env)
        out = r.stdout + r.stderr
        n = int(re.search(r"n_completed_buffers\s*=\s*(\d+)", out).group(1))
        failures = int(re.search(r"n_failures\s*=\s*(\d+)", out).group(1))
        return n, failures, out

    def test_free_running_acquisition(self):
        n, failures, out = self.acquire("-f", "20")
        self.assertIn("image width            = 144", out)
        self.assertIn("image height           = 144", out)
        self.assertGreaterEqual(n, 10, out)
        self.assertEqual(failures, 0, out)

    def test_software_triggered_acquisition(self):
        before = len(self.lab.frames())
        n, failures, out = self.acquire("-o", "10")
        self.assertGreaterEqual(n, 5, out)
        self.assertLessEqual(n, 12, out)  # one frame per trigger, not the free-running rate
        self.assertEqual(failures, 0, out)
        self.assertGreaterEqual(len(self.lab.frames()) - before, n)


class LabWithHilod(unittest.TestCase):
    """A lab (emulator started with EMULATOR_ARGS) and hilod on configs/emulated-lab.yaml."""
    EMULATOR_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="hilo_emu_hilod_")
        cls.lab = Lab(cls.tmp.name, *cls.EMULATOR_ARGS)
        try:
            cls.d = Daemon(HILOD, CONFIG, os.path.join(cls.tmp.name, "data"), heartbeat_s=0.1,
                           env=dict(os.environ, DISPLAY=cls.lab.env["DISPLAY"]))
            cls.c = Client(cls.d.commands)
        except BaseException:
            cls.lab.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.d.stop()
        cls.lab.stop()
        cls.tmp.cleanup()

    def check_every_frame_imaged_its_input(self, frames, inputs):
        by_frame = {}
        for e in self.lab.frames():
            if e.get("delivered"):
                by_frame.setdefault(e["frame_crc32"], []).append(e)
        for k in range(len(frames)):
            logged = by_frame.get(crc(frames[k]))
            self.assertIsNotNone(logged, f"record {k}: the stored frame is none the emulator sent")
            self.assertEqual({e["input_crc32"] for e in logged}, {crc(inputs[k])},
                             f"record {k}: the frame imaged another input than the one it is filed under")


class ThroughHilod(LabWithHilod):
    """hilod on the emulated lab: camera features and a capture, through the real drivers."""

    def signal_counts(self, exposure_ms, gain_db, level=100, n=4):
        """Mean counts of a uniform input at `level` less those of a dark input, at one camera setting."""
        self.c.configure(exposure_ms=exposure_ms, gain_db=gain_db)
        means = []
        for lv in (0, level):
            self.c.show(np.full((112, 112), lv, np.uint8))
            frames = [self.c.grab(timeout_ms=2000).astype(np.float64) for _ in range(n)]
            self.assertLess(max(f.max() for f in frames), 4095, "saturated: the ratio would be meaningless")
            means.append(np.mean(frames))
        return means[1] - means[0]

    def test_exposure_and_gain_change_the_frame_as_the_camera_model_says(self):
        try:
            base = self.signal_counts(5.0, 0.0)
            longer = self.signal_counts(10.0, 0.0)
            gained = self.signal_counts(5.0, 6.0)
        finally:
            self.c.configure(exposure_ms=10.0, gain_db=0.0)
        self.assertGreater(base, 10.0)  # 28 x 28 lit of 144 x 144 camera pixels: about 26 counts on average
        # counts = electrons / gain_e_per_count: linear in exposure, and gain G dB divides the
        # conversion gain by 10^(G/20); shot noise over 4 x 144 x 144 pixels keeps the ratios within 1 %
        print(f"signal at 5 ms {base:.2f} counts; 10 ms / 5 ms = {longer / base:.4f}; "
              f"6 dB / 0 dB = {gained / base:.4f} (model {10 ** 0.3:.4f})")
        self.assertAlmostEqual(longer / base, 2.0, delta=0.02)
        self.assertAlmostEqual(gained / base, 10 ** (6.0 / 20.0), delta=0.02)

    def test_capture_stores_the_frame_the_emulator_rendered_for_each_input(self):
        t0 = time.monotonic()
        rec = self.c.capture(start=0, count=N_CAPTURE, split="train", wait=True, timeout_s=300)
        elapsed = time.monotonic() - t0
        self.assertEqual(rec["state"], "done", rec)
        manifest, arrays = load_run(os.path.join(self.tmp.name, "data", rec["run_id"]))
        frames, inputs, labels, indices = arrays["frames"], arrays["inputs"], arrays["labels"], arrays["indices"]
        self.assertEqual(frames.shape, (N_CAPTURE, 144, 144))
        self.assertEqual(frames.dtype, np.uint16)
        np.testing.assert_array_equal(indices, np.arange(N_CAPTURE))

        self.check_every_frame_imaged_its_input(frames, inputs)
        # the stored inputs and labels are the dataset's, read here from the IDX files themselves
        images, truth = fashion_mnist_train(N_CAPTURE)
        np.testing.assert_array_equal(inputs, images)
        np.testing.assert_array_equal(labels, truth)
        # frames differ between inputs: the optics image the input, they do not repeat one frame
        self.assertEqual(len({crc(f) for f in frames}), N_CAPTURE)
        # The emulator's timestamps mark each exposure start after the trigger: the frame gate rejects none.
        self.assertEqual(rec["stats"]["capture"]["early_frames"], 0, rec["stats"])
        # Without faults the content check (on: the config has a design) rejects no fresh frame.
        self.assertTrue(rec["stats"]["content_check"]["active"], rec["stats"])
        self.assertEqual(rec["stats"]["capture"]["content_rejects"], 0, rec["stats"])
        # The rate against the device-limited rate (the ratio itself is the benchmark's,
        # bench/controller/bench_emulated_rate.py; a shared machine makes it no test).
        r = rec["stats"]["rate"]
        self.assertEqual(r["frames"], N_CAPTURE)
        self.assertAlmostEqual(r["frames_per_s"], N_CAPTURE / r["seconds"], places=6)
        self.assertEqual((r["settle_ms"], r["exposure_ms"]), (33.0, 10.0))  # configs/emulated-lab.yaml
        self.assertGreater(r["readout_ms"], 0.0)
        self.assertAlmostEqual(r["device_limited_frames_per_s"],
                               1000.0 / (r["settle_ms"] + r["exposure_ms"] + r["readout_ms"]), places=6)
        self.assertLessEqual(r["frames_per_s"], r["device_limited_frames_per_s"] * 1.05)  # cannot beat the devices (median readout: 5 % slack)
        print(f"capture of {N_CAPTURE} images through hilod on the emulated lab: {elapsed:.1f} s "
              f"({N_CAPTURE / elapsed:.1f} frames/s); stats {json.dumps(rec.get('stats', {}))}")


class DroppedFramesAndTimeouts(LabWithHilod):
    """2 % dropped frames and 2 % timeouts: hilod's capture re-grabs, files nothing wrongly, counts each."""
    EMULATOR_ARGS = ("--dropped-frame-fraction", "0.02", "--timeout-fraction", "0.02", "--fault-seed", "7")

    def test_capture_counts_every_fault_and_misattributes_nothing(self):
        n = 200
        rec = self.c.capture(start=0, count=n, split="test", timeout_ms=300, wait=True, timeout_s=120)
        self.assertEqual(rec["state"], "done", rec)
        _, arrays = load_run(os.path.join(self.tmp.name, "data", rec["run_id"]))
        self.check_every_frame_imaged_its_input(arrays["frames"], arrays["inputs"])
        log = self.lab.frames()
        dropped = sum(e["fault"] == "dropped" for e in log)
        timeouts = sum(e["fault"] == "timeout" for e in log)
        self.assertGreater(dropped, 0)
        self.assertGreater(timeouts, 0)
        st = rec["stats"]["capture"]
        # A faulted frame makes the driver's grab time out; the retry wrapper grabs again. A dropped
        # frame's id is missing, so the next frame shows a gap: the capture re-shows and re-grabs.
        self.assertEqual(st["camera_driver"]["retries"] + st["timeouts"], dropped + timeouts, st)
        self.assertEqual(st["gap_frames"], dropped, st)
        self.assertEqual(st["frames_dropped"], dropped, st)
        self.assertEqual(st["frames_stored"], n, st)
        print(f"faults logged: {dropped} dropped, {timeouts} timeouts; capture stats {json.dumps(st)}")


class SlowSlmAndDroppedFrames(LabWithHilod):
    """A slow SLM on 5 % of grabs and 2 % dropped frames: the content check rejects every frame that shows
    the previous input, the frame gate every frame after a gap; nothing is misattributed and every
    frame the emulator sent is either stored, a dark reference of the content check, or counted."""
    EMULATOR_ARGS = ("--slow-slm-fraction", "0.05", "--dropped-frame-fraction", "0.02", "--fault-seed", "11")

    def test_capture_rejects_every_stale_frame_by_content_and_counts_it(self):
        n = 500  # the clean capture's 500 images, now with faults
        rec = self.c.capture(start=0, count=n, split="test", timeout_ms=300, wait=True, timeout_s=240)
        self.assertEqual(rec["state"], "done", rec)
        manifest, arrays = load_run(os.path.join(self.tmp.name, "data", rec["run_id"]))
        self.check_every_frame_imaged_its_input(arrays["frames"], arrays["inputs"])
        log = [e for e in self.lab.frames() if e["fault"] != "timeout"]  # in id order; timeouts take no id
        delivered = [e for e in log if e["delivered"]]
        dropped = sum(e["fault"] == "dropped" for e in log)
        dark = crc(np.zeros((28, 28), np.uint8))
        slow_after_gap = slow_reference = slow_judged = 0
        for prev, e in zip([None] + log[:-1], log):
            if e["fault"] != "slow_slm":
                continue
            if prev is not None and prev["fault"] == "dropped":
                slow_after_gap += 1  # rejected by its frame id first
            elif e["screen_crc32"] == dark:
                slow_reference += 1  # a dark reference frame: the median of three absorbs it
            else:
                slow_judged += 1
        self.assertGreaterEqual(slow_judged, 5, "too few slow frames for the test to mean anything")
        self.assertGreater(dropped, 0)
        st, cc = rec["stats"]["capture"], rec["stats"]["content_check"]
        self.assertTrue(cc["active"], cc)
        self.assertEqual(cc["reference_frames"], 3, cc)
        self.assertEqual(st["content_rejects"], slow_judged, st)
        self.assertEqual(st["content_undecidable"], 0, st)
        self.assertEqual(st["gap_frames"], dropped, st)
        self.assertEqual(st["frames_dropped"], dropped, st)
        self.assertEqual(st["camera_driver"]["retries"] + st["timeouts"], dropped, st)
        self.assertEqual(st["frames_stored"], n, st)
        # Every frame the emulator sent is accounted for.
        rejected = st["content_rejects"] + st["gap_frames"] + st["out_of_order"] + st["early_frames"]
        self.assertEqual(len(delivered), n + cc["reference_frames"] + rejected, st)
        self.assertEqual(st["regrabs"], rejected + st["timeouts"], st)
        self.assertEqual(manifest["stats"]["capture"]["content_rejects"], slow_judged)
        totals = self.c.call("devices.status")["counters"]
        self.assertEqual(totals["content_rejects"], slow_judged, totals)
        print(f"faults logged: {slow_judged} slow frames judged ({slow_reference} in the dark reference, "
              f"{slow_after_gap} after a gap), {dropped} dropped; capture stats {json.dumps(st)}; "
              f"content check {json.dumps(cc)}")


class SlowSlmAndDisappearingCamera(LabWithHilod):
    """The slow-SLM fault images the previous input; the camera vanishes after 11 delivered frames."""
    EMULATOR_ARGS = ("--slow-slm-fraction", "0.5", "--disappear-after-frames", "11", "--fault-seed", "3")

    def test_slow_slm_frames_image_the_previous_pattern_then_the_camera_disappears(self):
        a = np.zeros((112, 112), np.uint8)
        a[28:84, 28:56] = 200
        b = np.zeros((112, 112), np.uint8)
        b[28:84, 56:84] = 200
        self.c.show(a)
        self.c.grab(timeout_ms=2000)  # the emulator has now seen A
        self.c.show(b)
        grabbed = [crc(self.c.grab(timeout_ms=2000)) for _ in range(10)]
        log = {e["frame_crc32"]: e for e in self.lab.frames() if e.get("delivered")}
        imaged = [log[g]["input_crc32"] for g in grabbed]
        ca = crc(a[::4, ::4])
        cb = crc(b[::4, ::4])
        slow = [log[g]["fault"] == "slow_slm" for g in grabbed]
        self.assertEqual(imaged, [ca if s_ else cb for s_ in slow])
        self.assertTrue(any(slow) and not all(slow), slow)
        self.assertTrue(all(log[g]["screen_crc32"] == cb for g in grabbed), [log[g] for g in grabbed])
        self.assertEqual(len(log), 11)  # the last frame the camera sends
        with self.assertRaises(HiloError) as e:
            self.c.grab(timeout_ms=500)
        self.assertEqual(e.exception.code, "device_error", e.exception.message)
        self.assertTrue(e.exception.message.endswith("[disconnected]"), e.exception.message)
        # The emulator logs the event just before it closes the camera; the log line may still be on its
        # way to the file when hilod has seen the camera go.
        deadline = time.monotonic() + 10
        while {"event": "disappeared", "after_frames": 11} not in self.lab.events() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn({"event": "disappeared", "after_frames": 11}, self.lab.events())
        self.assertEqual(self.lab.events()[0]["options"]["faults"]["disappear_after_frames"], 11)
        self.assertEqual(self.c.call("devices.list")["devices"][1]["state"], "disconnected")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
