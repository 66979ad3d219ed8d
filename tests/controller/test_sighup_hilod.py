"""SIGHUP re-reads hilod's client allow-list (CurveZMQ on loopback), through a real daemon.

usage: test_sighup_hilod.py HILOD
A client is refused, allowed after its key is added and SIGHUP sent, refused after it is removed again;
a bad file on reload keeps the previous list and logs the error.
"""
import json
import os
import signal
import sys
import tempfile
import time
import unittest

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "python"))
from hilo.testing import Daemon, call, keypair  # noqa: E402

SIM_FAST = os.path.join(HERE, "sim_fast.yaml")

HILOD = sys.argv[1]


class Reload(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="hilo_hup_")
        self.server, self.operator, self.newcomer = keypair(), keypair(), keypair()
        server_file = os.path.join(self.tmp.name, "server.key")
        with open(server_file, "w") as f:
            f.write(self.server[0] + "\n" + self.server[1] + "\n")
        self.clients = os.path.join(self.tmp.name, "clients.txt")
        self.write_clients(f"control {self.operator[0]} operator\n")
        self.logfile = os.path.join(self.tmp.name, "hilod.log")
        self.d = Daemon(HILOD, SIM_FAST, os.path.join(self.tmp.name, "data"),
                        ["--curve-key-file", server_file, "--client-keys", self.clients, "--log-file", self.logfile,
                         "--log-format", "json"], heartbeat_s=0.1)
        self.ctx = zmq.Context()

    def tearDown(self):
        self.ctx.destroy()
        rc = self.d.stop()
        self.tmp.cleanup()
        self.assertEqual(rc, 0)

    def write_clients(self, text):
        tmp = self.clients + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.clients)

    def ping(self, keys, timeout_ms=1500):
        r = call(self.ctx, self.d.commands, {"id": 1, "cmd": "ping"}, keys=keys, server_pub=self.server[0],
                 timeout_ms=timeout_ms)
        return r is not None and r["ok"]

    def hup_and_wait(self, msg):
        """Sends SIGHUP and waits for the log line `msg` that the reload writes (one more than before)."""
        before = self.count(msg)
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.count(msg) == before:
            self.assertLess(time.monotonic(), deadline, "no '" + msg + "' after SIGHUP:\n" + self.d.stderr())
            time.sleep(0.02)
        return self.records(msg)[-1]

    def records(self, msg):
        with open(self.logfile) as f:
            return [r for r in map(json.loads, f) if r["msg"].startswith(msg)]

    def count(self, msg):
        return len(self.records(msg))

    def test_added_key_is_admitted_after_sighup_and_refused_after_removal(self):
        self.assertTrue(self.ping(self.operator))
        self.assertFalse(self.ping(self.newcomer))
        self.write_clients(f"control {self.operator[0]} operator\nread_only {self.newcomer[0]} newcomer\n")
        r = self.hup_and_wait("client allow-list reloaded")
        self.assertEqual((r["keys"], r["previous_keys"]), (2, 1))
        self.assertTrue(self.ping(self.newcomer))
        self.write_clients(f"control {self.operator[0]} operator\n")
        self.hup_and_wait("client allow-list reloaded")
        self.assertFalse(self.ping(self.newcomer))
        self.assertTrue(self.ping(self.operator))
        self.assertIsNone(self.d.proc.poll())

    def test_bad_file_on_reload_keeps_the_previous_list_and_logs_why(self):
        self.write_clients(f"superuser {self.newcomer[0]}\n")
        r = self.hup_and_wait("client allow-list not reloaded")
        self.assertEqual(r["level"], "error")
        self.assertIn("clients.txt:1: role must be read_only or control", r["msg"])
        self.assertEqual(r["kept_keys"], 1)
        self.assertTrue(self.ping(self.operator))
        self.assertFalse(self.ping(self.newcomer))
        os.unlink(self.clients)
        r = self.hup_and_wait("client allow-list not reloaded")
        self.assertIn("cannot open the client key allow-list", r["msg"])
        self.assertTrue(self.ping(self.operator))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
