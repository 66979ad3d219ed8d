"""hilod's security options as a process: refused binds, key files, roles and limits from the command line.

usage: test_security_hilod.py HILOD REPO_ROOT
All traffic is on 127.0.0.1; the non-loopback endpoints are only ever refused (nothing is bound).
"""
import os
import subprocess
import sys
import tempfile
import time
import unittest

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "python"))
from hilo.testing import Daemon, call, keypair  # noqa: E402

HILOD, ROOT = sys.argv[1:3]
CONFIG = os.path.join(ROOT, "configs", "sim.yaml")


def Hilod(tmp, *extra, expect_start=True):
    """hilod on configs/sim.yaml; waits for its ready file (or its exit, for refused starts)."""
    return Daemon(HILOD, CONFIG, os.path.join(tmp, "data"), extra, heartbeat_s=0.1, wait_ready=expect_start,
                  loopback_ports=False)


class Refusals(unittest.TestCase):
    def refused(self, *args):
        with tempfile.TemporaryDirectory(prefix="hilo_sec_") as tmp:
            d = Hilod(tmp, *args, expect_start=False)
            try:
                rc = d.proc.wait(30)
            except subprocess.TimeoutExpired:
                d.stop()
                self.fail("hilod started on a refused configuration: " + d.stderr())
            log = d.stderr()
            d.stop()
            self.assertNotEqual(rc, 0, log)
            self.assertFalse(os.path.exists(d.ready_file), "refused daemon wrote its ready file")
            return log

    def test_wildcard_bind_without_keys_is_refused(self):
        log = self.refused("--command-endpoint", "tcp://0.0.0.0:*", "--event-endpoint", "tcp://127.0.0.1:*")
        self.assertIn("requires CurveZMQ keys", log)

    def test_non_loopback_event_endpoint_without_keys_is_refused(self):
        log = self.refused("--command-endpoint", "tcp://127.0.0.1:*", "--event-endpoint", "tcp://192.0.2.1:5556")
        self.assertIn("not loopback", log)

    def test_server_keys_without_an_allow_list_are_refused(self):
        with tempfile.TemporaryDirectory(prefix="hilo_sec_keys_") as keys:
            pub, sec = keypair()
            path = os.path.join(keys, "server.key")
            with open(path, "w") as f:
                f.write(pub + "\n" + sec + "\n")
            log = self.refused("--command-endpoint", "tcp://127.0.0.1:*", "--event-endpoint", "tcp://127.0.0.1:*",
                               "--curve-key-file", path)
            self.assertIn("allow-list", log)

    def test_bad_allow_list_line_is_refused_naming_the_line(self):
        with tempfile.TemporaryDirectory(prefix="hilo_sec_keys_") as keys:
            pub, sec = keypair()
            server = os.path.join(keys, "server.key")
            with open(server, "w") as f:
                f.write(pub + "\n" + sec + "\n")
            clients = os.path.join(keys, "clients.txt")
            with open(clients, "w") as f:
                f.write("# operators\nsuperuser " + keypair()[0] + "\n")
            log = self.refused("--command-endpoint", "tcp://127.0.0.1:*", "--event-endpoint", "tcp://127.0.0.1:*",
                               "--curve-key-file", server, "--client-keys", clients)
            self.assertIn("clients.txt:2: role must be read_only or control", log)


class CurveOnLoopback(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="hilo_sec_curve_")
        cls.server = keypair()
        cls.operator, cls.observer, cls.stranger = keypair(), keypair(), keypair()
        server_file = os.path.join(cls.tmp.name, "server.key")
        with open(server_file, "w") as f:
            f.write(cls.server[0] + "\n" + cls.server[1] + "\n")
        clients = os.path.join(cls.tmp.name, "clients.txt")
        with open(clients, "w") as f:
            f.write(f"control {cls.operator[0]} operator\nread_only {cls.observer[0]} observer  # dashboards\n")
        cls.d = Hilod(cls.tmp.name, "--command-endpoint", "tcp://127.0.0.1:*", "--event-endpoint", "tcp://127.0.0.1:*",
                      "--curve-key-file", server_file, "--client-keys", clients, "--max-jobs", "1",
                      "--max-json-bytes", "4096")
        cls.ctx = zmq.Context()

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        cls.ctx.term()
        cls.tmp.cleanup()
        assert rc == 0, f"hilod exited with {rc}"

    def call(self, req, keys, parts=(), timeout_ms=5000):
        return call(self.ctx, self.d.commands, req, parts, keys, self.server[0], timeout_ms)

    def test_stranger_gets_no_reply_and_the_denial_is_logged(self):
        self.assertIsNone(self.call({"id": 1, "cmd": "ping"}, self.stranger, timeout_ms=1500))
        deadline = time.monotonic() + 5
        while "denied a CURVE client" not in self.d.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("denied a CURVE client", self.d.stderr())

    def test_observer_reads_but_cannot_capture(self):
        r = self.call({"id": 1, "cmd": "devices.status"}, self.observer)
        self.assertTrue(r["ok"], r)
        r = self.call({"id": 2, "cmd": "capture", "args": {"dataset": "fashion-mnist", "start": 0, "count": 1}}, self.observer)
        self.assertEqual(r["error"]["code"], "forbidden", r)

    def test_operator_captures_and_limits_apply(self):
        r3 = self.call({"id": 5, "cmd": "capture", "args": {"inputs_npy": "../../etc/passwd"}}, self.operator)
        self.assertEqual(r3["error"]["code"], "forbidden_path", r3)
        r = self.call({"id": 3, "cmd": "capture", "args": {"inputs": {"dtype": "|u1", "shape": [400, 28, 28], "part": 1}}},
                      self.operator, [bytes(400 * 28 * 28)])
        self.assertTrue(r["ok"], r)
        r2 = self.call({"id": 4, "cmd": "capture", "args": {"inputs": {"dtype": "|u1", "shape": [1, 28, 28], "part": 1}}},
                       self.operator, [bytes(28 * 28)])
        self.assertEqual(r2["error"]["code"], "too_many_jobs", r2)
        self.call({"id": 6, "cmd": "jobs.cancel", "args": {"job_id": r["result"]["job_id"]}}, self.operator)
        r4 = self.call({"id": 7, "cmd": "ping", "args": {"pad": "x" * 5000}}, self.operator)
        self.assertEqual(r4["error"]["code"], "too_large", r4)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
