"""hilod's --options-file (the systemd service's configuration) and its sd_notify messages.

usage: test_options_file_hilod.py HILOD REPO_ROOT
"""
import json
import os
import socket
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "python"))
from hilo.testing import Daemon  # noqa: E402

SIM_FAST = os.path.join(HERE, "sim_fast.yaml")

HILOD, ROOT = sys.argv[1:3]


def options(tmp, **extra):
    body = {"config": SIM_FAST, "data-dir": os.path.join(tmp, "data"), "ready-file": os.path.join(tmp, "ready.json"),
            "command-endpoint": "tcp://127.0.0.1:*", "event-endpoint": "tcp://127.0.0.1:*", "log-format": "json",
            "heartbeat-s": 0.2, **extra}
    path = os.path.join(tmp, "hilod.conf")
    with open(path, "w") as f:
        f.write("# test options\n")
        for k, v in body.items():
            f.write(f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n")
    return path


class OptionsFile(unittest.TestCase):
    def test_daemon_takes_its_options_from_the_file_and_notifies_systemd(self):
        with tempfile.TemporaryDirectory(prefix="hilo_opts_") as tmp:
            conf = options(tmp)
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(os.path.join(tmp, "notify.sock"))
            notify.settimeout(30)
            env = dict(os.environ, NOTIFY_SOCKET=os.path.join(tmp, "notify.sock"))
            d = Daemon(HILOD, None, extra=["--options-file", conf], env=env, ready_file=os.path.join(tmp, "ready.json"))
            try:
                self.assertEqual(notify.recv(256), b"READY=1")
                self.assertTrue(os.path.isdir(os.path.join(tmp, "data")))  # data-dir from the file
            finally:
                rc = d.stop()
            self.assertEqual(notify.recv(256), b"STOPPING=1")
            notify.close()
            self.assertEqual(rc, 0, d.stderr())
            recs = [json.loads(line) for line in d.stderr().splitlines()]  # log-format from the file
            self.assertIn("serving", [r["msg"] for r in recs])

    def test_command_line_wins_over_the_file(self):
        with tempfile.TemporaryDirectory(prefix="hilo_opts_") as tmp:
            conf = options(tmp)
            d = Daemon(HILOD, None, extra=["--options-file", conf, "--log-format", "text"],
                       ready_file=os.path.join(tmp, "ready.json"))
            d.stop()
            self.assertRegex(d.stderr(), r"\[info\] hilod: serving command_endpoint=")

    def test_unknown_name_in_the_file_is_refused(self):
        with tempfile.TemporaryDirectory(prefix="hilo_opts_") as tmp:
            conf = options(tmp, **{"log-levle": "debug"})
            d = Daemon(HILOD, None, extra=["--options-file", conf], wait_ready=False)
            self.assertNotEqual(d.wait_exit(), 0)
            self.assertIn("log-levle", d.stderr())
            self.assertFalse(os.path.exists(os.path.join(tmp, "ready.json")))

    def test_shipped_options_file_has_only_known_names(self):
        with tempfile.TemporaryDirectory(prefix="hilo_opts_") as tmp:
            # the command line replaces the lab paths of configs/hilod.conf; every other line is read as is
            d = Daemon(HILOD, SIM_FAST, os.path.join(tmp, "data"), ["--options-file", os.path.join(ROOT, "configs", "hilod.conf")],
                       heartbeat_s=0.1)
            self.assertEqual(d.stop(), 0, d.stderr())


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
