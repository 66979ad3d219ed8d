"""The pipeline through the emulated lab with a slow SLM and dropped frames: nothing filed under the wrong input.

usage: test_emulated_pipeline_faults.py HILOD HILO_EMULATOR REPO_ROOT

Runs the quick pipeline job (configs/pipeline-quick.yaml, cut to 300 test and 100 validation images)
through hilod on the emulated lab while hilo-emulator serves 5 % slow-SLM frames (the frame images the
input shown before the current one) and drops 2 % of frames. The pipeline's stage stores, beside its
report, bench/bench/frame_log.npy: for every frame it kept, the camera's sequence number and the CRC-32
of the frame's bytes and of the input levels it filed the frame under; the report's
profiles[0].frame_integrity.calibration_frames says how many of them the calibration took (its probes
are gated by frame id and timestamp only, by design). Asserted, against the emulator's own frame log
(frame_id, frame_crc32, input_crc32 of what the frame imaged, fault):
  - every kept frame is one the emulator delivered (found by its bytes' CRC-32, with the same id);
  - every frame kept after the calibration imaged the input it is filed under (input_crc32 equal);
  - the slow frames the emulator served after the calibration's last kept frame are all accounted for:
    those right after a dropped frame were rejected by frame id (a gap) before any content check, every
    other one was rejected by the content check: content_rejects equals their number exactly, and at most
    1 % of the frames after the calibration were stored unproven (content_undecidable; the inputs that look
    alike through the trained element);
  - the faults happened (slow frames after calibration > 0, dropped frames > 0), so the test can fail.
"""
import json
import os
import sys
import tempfile
import unittest

import numpy as np

HILOD, EMULATOR, ROOT = sys.argv[1:4]
sys.argv = sys.argv[:4]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_emulated_lab import CONFIG, Lab  # noqa: E402
from test_emulated_pipeline import quick_job, run_pipeline  # noqa: E402

FAULTS = ("--slow-slm-fraction", "0.05", "--dropped-frame-fraction", "0.02", "--fault-seed", "5")
TEST_IMAGES = 300
VAL_IMAGES = 100


class PipelineWithFaults(unittest.TestCase):
    def test_no_frame_is_filed_under_the_wrong_input_and_every_slow_frame_is_counted(self):
        with tempfile.TemporaryDirectory(prefix="hilo_emu_pipeline_faults_") as tmp:
            lab = Lab(tmp, *FAULTS)
            try:
                job = quick_job(profiles=[], test_images=TEST_IMAGES)
                job["data"]["val_size"] = VAL_IMAGES
                rec, report, seconds = run_pipeline(CONFIG, [], tmp, job, env={"DISPLAY": lab.env["DISPLAY"]})
                emulated = lab.frames()
            finally:
                lab.stop()
            kept = np.load(os.path.join(tmp, "data", rec["run_id"], "bench", "bench", "frame_log.npy"))

        integrity = report["profiles"][0]["frame_integrity"]
        self.assertTrue(integrity["content_check"]["active"], integrity)
        n_cal = integrity["calibration_frames"]
        self.assertEqual(kept.shape, (integrity["frames_kept"], 3))
        self.assertGreater(n_cal, 0)
        self.assertGreater(len(kept) - n_cal, TEST_IMAGES)

        log = [e for e in emulated if e["fault"] != "timeout"]  # in id order; timeouts take no id
        by_crc = {}
        for e in log:
            if e["delivered"]:
                by_crc.setdefault(e["frame_crc32"], []).append(e)
        matched = []
        for i, (sequence, frame_crc, input_crc) in enumerate(kept.astype(np.int64)):
            candidates = [e for e in by_crc.get(int(frame_crc), []) if e["frame_id"] == sequence]
            self.assertEqual(len(candidates), 1, f"kept frame {i} (sequence {sequence}) is no frame the emulator sent")
            e = candidates[0]
            if i >= n_cal:
                self.assertEqual(e["input_crc32"], int(input_crc),
                                 f"kept frame {i} (id {sequence}, the {i - n_cal + 1}th after the calibration's "
                                 f"{n_cal}) imaged another input than the one it is filed under (fault '{e['fault']}')")
            matched.append(e)
        last_calibration_id = matched[n_cal - 1]["frame_id"]

        after = [(prev, e) for prev, e in zip([None] + log[:-1], log) if e["frame_id"] > last_calibration_id]
        slow = [(prev, e) for prev, e in after if e["fault"] == "slow_slm" and e["delivered"]]
        slow_after_gap = sum(1 for prev, _ in slow if prev is not None and prev["fault"] == "dropped")
        slow_judged = len(slow) - slow_after_gap
        dropped = sum(e["fault"] == "dropped" for e in log)
        print(f"pipeline {seconds:.0f} s; {len(kept)} frames kept ({n_cal} by the calibration); after it the "
              f"emulator served {len(slow)} slow frames ({slow_after_gap} right after a drop); {dropped} frames "
              f"dropped in all; frame integrity {json.dumps(integrity)}")
        self.assertGreater(slow_judged, 3, "too few slow frames after the calibration for the test to mean anything")
        self.assertGreater(dropped, 0)
        self.assertEqual(integrity["content_rejects"], slow_judged, integrity)
        # An undecidable frame is stored marked unproven (accept_unproven): two consecutive inputs that look
        # alike through the deployed element, or a model that disagrees with a settled frame (docs/devices.md).
        # How many depends on the element the job trained (one of ~700 after a change of the student's
        # arithmetic); every kept frame is already proven above to be filed under the input it imaged.
        self.assertLessEqual(integrity["content_undecidable"], max(1, (len(kept) - n_cal) // 100), integrity)
        self.assertGreaterEqual(integrity["gap_frames"], slow_after_gap, integrity)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
