"""daemon.stats on a real hilod: a client that stops reading makes replies_dropped grow, as a second
client sees through daemon.stats (and through `hiloctl daemon stats`); the daemon keeps answering.

usage: test_daemon_stats_hilod.py HILOD HILOCTL
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "python"))
from hilo.testing import Daemon, call  # noqa: E402

SIM_FAST = os.path.join(HERE, "sim_fast.yaml")

HILOD, HILOCTL = sys.argv[1:3]
COUNTERS = ("uptime_s", "requests", "overloaded", "replies_dropped", "zap_allowed", "zap_denied",
            "max_queue_depth", "queue_depth", "computing")
JOB_STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")


class DaemonStats(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="hilo_stats_")
        # One unread reply per client is kept; beyond it replies to that client are dropped.
        self.d = Daemon(HILOD, SIM_FAST, os.path.join(self.tmp.name, "data"), ["--max-pending-replies", "1"], heartbeat_s=0.1)
        self.ctx = zmq.Context()

    def tearDown(self):
        self.ctx.destroy(linger=0)
        self.d.stop()
        self.tmp.cleanup()

    def stats(self):
        r = call(self.ctx, self.d.commands, {"v": 1, "id": "s", "cmd": "daemon.stats"})
        self.assertIsNotNone(r, "daemon.stats not answered: " + self.d.stderr())
        self.assertTrue(r["ok"], r)
        return r["result"]

    def test_every_counter_is_reported(self):
        s = self.stats()
        for k in COUNTERS:
            self.assertIn(k, s)
        for k in JOB_STATES + ("active",):
            self.assertEqual(s["jobs"][k], 0, s)
        self.assertIn("frames_stored", s["devices"])
        self.assertIn("camera_driver", s["devices"])
        self.assertGreater(s["uptime_s"], 0)
        # Requests answered before this one are counted (the stats reply itself is not yet).
        for _ in range(3):
            call(self.ctx, self.d.commands, {"v": 1, "id": 1, "cmd": "ping"})
        self.assertEqual(self.stats()["requests"], s["requests"] + 4)
        out = subprocess.run([HILOCTL, "--endpoint", self.d.commands, "daemon", "stats"], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["jobs"]["active"], 0, out.stdout)
        self.assertIn("replies_dropped", out.stdout)

    def test_a_client_that_stops_reading_makes_replies_dropped_grow(self):
        self.assertEqual(self.stats()["replies_dropped"], 0)
        mute = self.ctx.socket(zmq.DEALER)
        mute.linger = 0
        mute.rcvhwm = 1
        mute.rcvbuf = 4096  # a small kernel buffer: the daemon's side fills after a few replies
        mute.connect(self.d.commands)
        req = json.dumps({"v": 1, "id": 7, "cmd": "version"}).encode()
        sent, dropped = 0, 0
        deadline = time.monotonic() + 20
        while dropped == 0 and time.monotonic() < deadline:
            for _ in range(500):
                mute.send_multipart([b"", req])
                sent += 1
            dropped = self.stats()["replies_dropped"]
        self.assertGreater(dropped, 0, f"{sent} unread requests and no reply was dropped")
        for _ in range(500):
            mute.send_multipart([b"", req])
        deadline = time.monotonic() + 10
        later = dropped
        while later == dropped and time.monotonic() < deadline:
            time.sleep(0.05)
            later = self.stats()["replies_dropped"]
        self.assertGreater(later, dropped)
        self.assertLessEqual(later, sent + 500)
        # The daemon keeps answering everyone else.
        r = call(self.ctx, self.d.commands, {"v": 1, "id": 2, "cmd": "ping"}, timeout_ms=2000)
        self.assertTrue(r and r["ok"], r)
        mute.close()


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
