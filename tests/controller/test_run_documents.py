"""Run documents (docs/protocol.md "Run documents") of real daemon processes, checked against the stored runs.

usage: test_run_documents.py HILOD HILOD_TESTBENCH REPO_ROOT
  HILOD            the real daemon in simulator mode on configs/sim.yaml (device latencies as configured)
  HILOD_TESTBENCH  the daemon over the test-double devices, with --grab-delay-ms / --fail-after-grabs
"""
import os
import sys
import time
import unittest

import numpy as np

HILOD, TESTBENCH, ROOT = sys.argv[1:4]
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo import Client, load_run  # noqa: E402
from hilo.testing import Daemon  # noqa: E402

SIM_CONFIG = os.path.join(ROOT, "configs", "sim.yaml")
FAKE_CONFIG = os.path.join(ROOT, "tests", "controller", "sim_fast.yaml")  # read by nobody but --config


def images(n):
    """Inline inputs (no dataset to load: the test-double daemon starts capturing at once)."""
    return np.random.default_rng(n).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def collect(c: Client, cmd_args, cancel_after_events=None, inputs=None):
    """Runs a capture through run_job and returns (final job, [(name, doc, chunk arrays read at receipt)]).
    Each event's chunk files are read the moment the event arrives (None for a file already gone)."""
    docs = []

    def on_document(name, doc):
        read = None
        if name == "run.event":
            run_dir = os.path.join(c.run(doc["run_id"])["path"])
            read = {}
            for array, rel in doc["file"].items():
                try:
                    read[array] = np.load(os.path.join(run_dir, rel))
                except FileNotFoundError:
                    read[array] = None
            if cancel_after_events is not None and sum(d[0] == "run.event" for d in docs) + 1 == cancel_after_events:
                c.cancel(doc["job_id"])
        docs.append((name, doc, read))

    job = c.run_job("capture", cmd_args, None if inputs is None else {"inputs": inputs}, on_document=on_document,
                    timeout_s=60)
    return job, docs


class RunDocumentChecks(unittest.TestCase):
    def check_documents(self, c, job, docs, exit_status):
        """Order, links, counts and data of one run's documents against its stored run."""
        names = [d[0] for d in docs]
        self.assertEqual(names[0], "run.start", names)
        self.assertEqual(names[-1], "run.stop", names)
        self.assertEqual(names.count("run.start"), 1, names)
        self.assertEqual(names.count("run.stop"), 1, names)
        start, stop = docs[0][1], docs[-1][1]
        events = [d for d in docs if d[0] == "run.event"]
        if events:
            self.assertEqual(names[1], "run.descriptor", names)
            self.assertEqual(names[2:-1], ["run.event"] * len(events), names)
        uids = [d[1]["uid"] for d in docs]
        self.assertEqual(len(set(uids)), len(uids), "uids must be unique")
        for _, d, _ in docs:
            self.assertEqual(d["run_id"], job["run_id"])
            self.assertIsInstance(d["time"], float)
        self.assertEqual(start["kind"], "capture")
        self.assertEqual(start["job_id"], job["job_id"])
        self.assertFalse(start["resumed"])
        self.assertEqual(start["first_record"], 0)
        self.assertEqual(stop["run_start"], start["uid"])
        self.assertEqual(stop["exit_status"], exit_status, stop)
        self.assertEqual(stop["reason"], job["error"])
        self.assertEqual(stop["num_events"], len(events))

        run = c.run(job["run_id"])
        manifest, arrays = load_run(run["path"])
        self.assertEqual(stop["records"], manifest["records"])
        self.assertEqual(stop["records"], sum(e[1]["records"] for e in events))
        if not events:
            return run, manifest, arrays, start, []
        descriptor = docs[1][1]
        self.assertEqual(descriptor["run_start"], start["uid"])
        self.assertEqual(set(descriptor["data_keys"]), set(arrays))
        for name, key in descriptor["data_keys"].items():
            self.assertEqual(key["dtype"], arrays[name].dtype.str, name)
            self.assertEqual(list(key["shape"]), list(arrays[name].shape[1:]), name)
        self.assertEqual(descriptor["data_keys"]["frames"]["units"], "counts")
        self.assertEqual(descriptor["data_keys"]["inputs"]["units"], "levels")
        first = 0
        for seq, (_, ev, read) in enumerate(events, start=1):
            self.assertEqual(ev["descriptor"], descriptor["uid"])
            self.assertEqual(ev["seq_num"], seq)
            self.assertEqual(ev["first_record"], first)
            first += ev["records"]
            self.assertEqual(set(ev["file"]), set(arrays))
            for name, chunk in read.items():
                stored = arrays[name][ev["first_record"]:first]
                self.assertEqual(stored.shape[0], ev["records"])
                if chunk is not None:
                    np.testing.assert_array_equal(chunk, stored, err_msg=f"event {seq}, {name}")
        return run, manifest, arrays, start, events


class RealDaemon(RunDocumentChecks):
    def test_capture_documents_match_the_stored_run(self):
        with Daemon(HILOD, SIM_CONFIG) as d, d.client(timeout_ms=20000) as c:
            job, docs = collect(c, {"dataset": "fashion-mnist", "split": "train", "start": 3, "count": 20,
                                    "chunk_records": 5})
            self.assertEqual(job["state"], "done", job)
            run, manifest, arrays, start, events = self.check_documents(c, job, docs, "success")
            self.assertEqual(len(events), 4)
            self.assertEqual(start["config"]["dataset"], "fashion-mnist")
            self.assertEqual(start["config"]["start"], 3)
            self.assertEqual(start["config"]["chunk_records"], 5)
            self.assertEqual(start["bench"]["config"], SIM_CONFIG)
            self.assertEqual(start["bench"]["devices"], manifest["devices"])
            np.testing.assert_array_equal(arrays["indices"], np.arange(3, 23))
            # Every chunk but the last stays on disk for at least one more chunk of real device time, so
            # its files must have been read when its event arrived.
            for _, ev, read in events[:-1]:
                self.assertTrue(all(a is not None for a in read.values()), f"chunk files of event {ev['seq_num']} were gone")


class TestBench(RunDocumentChecks):
    def test_a_failing_capture_stops_with_fail_and_keeps_its_records(self):
        with Daemon(TESTBENCH, FAKE_CONFIG, extra=["--fail-after-grabs", "7"]) as d, d.client(timeout_ms=20000) as c:
            job, docs = collect(c, {"chunk_records": 3}, inputs=images(50))
            self.assertEqual(job["state"], "failed", job)
            self.assertIn("injected io error", job["error"])
            _, manifest, _, _, events = self.check_documents(c, job, docs, "fail")
            self.assertEqual(manifest["records"], 7)
            self.assertEqual([e[1]["records"] for e in events], [3, 3, 1])

    def test_a_cancelled_capture_stops_with_abort(self):
        with Daemon(TESTBENCH, FAKE_CONFIG, extra=["--grab-delay-ms", "20"]) as d, d.client(timeout_ms=20000) as c:
            job, docs = collect(c, {"chunk_records": 4}, cancel_after_events=2, inputs=images(1000))
            self.assertEqual(job["state"], "cancelled", job)
            _, manifest, _, _, events = self.check_documents(c, job, docs, "abort")
            self.assertGreaterEqual(len(events), 2)
            self.assertLess(manifest["records"], 1000)

    def test_a_stopped_daemon_sends_abort_and_keeps_every_chunk_an_event_named(self):
        with Daemon(TESTBENCH, FAKE_CONFIG, extra=["--grab-delay-ms", "20"]) as d, d.client(timeout_ms=20000) as c:
            c.subscribe("run.", wait_live=True)
            started = c.capture(inputs=images(1000), chunk_records=4)
            docs = []
            for name, doc in c.follow_run(started["run_id"], timeout_s=30):
                docs.append((name, doc))
                if sum(n == "run.event" for n, _ in docs) == 2 and d.proc.poll() is None:
                    d.proc.send_signal(15)
            self.assertEqual(d.proc.wait(30), 0)
            stop = docs[-1][1]
            self.assertEqual(stop["exit_status"], "abort")
            self.assertEqual(stop["reason"], "daemon shut down during the job")
            run_dir = os.path.join(d.data, started["run_id"])
            manifest, arrays = load_run(run_dir)  # interrupted: chunks kept for the next daemon
            events = [doc for n, doc in docs if n == "run.event"]
            self.assertEqual(stop["records"], manifest["records"])
            self.assertEqual(sum(e["records"] for e in events), manifest["records"])
            for ev in events:
                for name, rel in ev["file"].items():
                    chunk = np.load(os.path.join(run_dir, rel))
                    np.testing.assert_array_equal(chunk, arrays[name][ev["first_record"]:ev["first_record"] + ev["records"]])

    def test_a_subscriber_sees_documents_without_run_job(self):
        with Daemon(TESTBENCH, FAKE_CONFIG) as d, d.client(timeout_ms=20000) as c:
            c.subscribe("run.", wait_live=True)
            started = c.capture(inputs=images(9), chunk_records=4)
            names = [n for n, _ in c.follow_run(started["run_id"], timeout_s=30)]
            self.assertEqual(names, ["run.start", "run.descriptor"] + ["run.event"] * 3 + ["run.stop"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
