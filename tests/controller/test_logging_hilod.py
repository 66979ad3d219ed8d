"""hilod's log as a process: structured JSON lines, one line per error reply with its context, rotation,
refused log options.

usage: test_logging_hilod.py HILOD
"""
import json
import os
import sys
import tempfile
import time
import unittest

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "python"))
from hilo.testing import Daemon, call  # noqa: E402

SIM_FAST = os.path.join(HERE, "sim_fast.yaml")

HILOD = sys.argv[1]


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def hilod(tmp, *extra, wait_ready=True):
    """hilod on the fast simulated bench, its data in tmp/data."""
    return Daemon(HILOD, SIM_FAST, os.path.join(tmp, "data"), extra, heartbeat_s=0.1, wait_ready=wait_ready)


class JsonLog(unittest.TestCase):
    def test_each_error_reply_is_one_structured_line_with_its_context(self):
        with tempfile.TemporaryDirectory(prefix="hilo_log_") as tmp:
            logfile = os.path.join(tmp, "hilod.log")
            d = hilod(tmp, "--log-file", logfile, "--log-format", "json")
            ctx = zmq.Context()
            try:
                bad = call(ctx, d.commands, {"id": "r1", "cmd": "devices.configure", "args": {"exposure_ms": "long"}})
                self.assertEqual(bad["error"]["code"], "wrong_type")
                self.assertEqual(call(ctx, d.commands, {"id": 2, "cmd": "no.such"})["error"]["code"], "unknown_command")
                self.assertEqual(call(ctx, d.commands, b"{not json")["error"]["code"], "malformed_json")
                self.assertTrue(call(ctx, d.commands, {"id": 3, "cmd": "ping"})["ok"])
                job = call(ctx, d.commands, {"id": 4, "cmd": "capture",
                                             "args": {"dataset": "fashion-mnist", "start": 0, "count": 3}})["result"]
                deadline = time.monotonic() + 20
                while '"msg":"job done"' not in d.stderr():
                    self.assertLess(time.monotonic(), deadline, d.stderr())
                    time.sleep(0.05)
            finally:
                ctx.destroy()
                rc = d.stop()
            self.assertEqual(rc, 0, d.stderr())
            recs = lines(logfile)  # every line parses
            for r in recs:
                self.assertEqual(set(r) >= {"time", "level", "logger", "msg"}, True, r)
                self.assertRegex(r["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
                self.assertEqual(r["logger"], "hilod")
            errors = [r for r in recs if r["msg"] == "error reply"]
            self.assertEqual(len(errors), 3, recs)  # one per bad request, none for the ping
            by_code = {r["code"]: r for r in errors}
            wt = by_code["wrong_type"]
            self.assertEqual((wt["level"], wt["cmd"], wt["id"], wt["client"], wt["role"]),
                             ("warning", "devices.configure", "r1", "127.0.0.1", "control"))
            self.assertEqual(wt["error"], bad["error"]["message"])
            self.assertEqual((by_code["unknown_command"]["cmd"], by_code["unknown_command"]["id"]), ("no.such", 2))
            self.assertEqual(by_code["malformed_json"]["cmd"], "")
            self.assertIn("serving", [r["msg"] for r in recs])
            jobs = [(r["msg"], r["job_id"], r["kind"], r["run_id"]) for r in recs if r["msg"].startswith("job ")]
            self.assertEqual(jobs, [(m, job["job_id"], "capture", job["run_id"]) for m in ("job running", "job done")])
            # stderr carries the same lines
            self.assertEqual(sum('"msg":"error reply"' in line for line in d.stderr().splitlines()), 3)

    def test_log_file_rotates_at_its_size_and_keeps_count_files(self):
        with tempfile.TemporaryDirectory(prefix="hilo_logrot_") as tmp:
            logfile = os.path.join(tmp, "hilod.log")
            d = hilod(tmp, "--log-file", logfile, "--log-level", "debug", "--log-file-max-bytes", "1024",
                      "--log-file-count", "2")
            ctx = zmq.Context()
            try:
                for i in range(60):  # one debug line (~120 bytes) per request
                    self.assertTrue(call(ctx, d.commands, {"id": i, "cmd": "ping"})["ok"])
            finally:
                ctx.destroy()
                d.stop()
            names = sorted(os.listdir(tmp))
            self.assertIn("hilod.1.log", names)
            self.assertIn("hilod.2.log", names)
            self.assertNotIn("hilod.3.log", names)
            for n in ("hilod.log", "hilod.1.log", "hilod.2.log"):
                self.assertLessEqual(os.path.getsize(os.path.join(tmp, n)), 1024, n)
            with open(os.path.join(tmp, "hilod.1.log")) as f:
                self.assertIn("[debug] hilod: request", f.read())

    def test_bad_log_options_are_refused_naming_the_rule(self):
        for args, rule in ((["--log-level", "loud"], "log.level must be one of"),
                           (["--log-format", "xml"], "log.format must be text or json"),
                           (["--log-file-max-bytes", "10"], "log.file_max_bytes must be in"),
                           (["--log-file", "{tmp}/file/hilod.log"], "log file {tmp}/file/hilod.log")):
            with self.subTest(args=args), tempfile.TemporaryDirectory(prefix="hilo_logbad_") as tmp:
                open(os.path.join(tmp, "file"), "w").close()  # a file where the log's directory would be
                args, rule = [a.format(tmp=tmp) for a in args], rule.format(tmp=tmp)
                d = hilod(tmp, *args, wait_ready=False)
                rc = d.wait_exit()
                self.assertEqual(rc, 2, d.stderr())
                self.assertIn(rule, d.stderr())


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
