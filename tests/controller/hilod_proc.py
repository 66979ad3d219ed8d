"""hilod as a child process for the lab-tool tests: loopback wildcard ports, a ready file, stderr kept.

Hilod(exe, tmp, *args, expect_start=True, env=None, bench=True, config=SIM_FAST, loopback_ports=True): with
bench=True it gets --config, a data dir, a ready file, a 0.1 s heartbeat and (loopback_ports) wildcard
loopback endpoints; extra args follow. stop() sends
SIGTERM and returns the exit code. call() sends one request on a fresh DEALER (optionally CurveZMQ).
"""
import json
import os
import signal
import subprocess
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
SIM_FAST = os.path.join(HERE, "sim_fast.yaml")


class Hilod:
    def __init__(self, exe, tmp, *extra, expect_start=True, env=None, bench=True, ready=None, config=SIM_FAST,
                 loopback_ports=True):
        self.ready = ready or os.path.join(tmp, "ready.json")
        self.stderr_path = os.path.join(tmp, "stderr.txt")
        self.stderr = open(self.stderr_path, "w")
        base = []
        if bench:
            base = ["--config", config, "--data-dir", os.path.join(tmp, "data"), "--ready-file", self.ready,
                    "--heartbeat-s", "0.1"]
            if loopback_ports:
                base += ["--command-endpoint", "tcp://127.0.0.1:*", "--event-endpoint", "tcp://127.0.0.1:*"]
        self.proc = subprocess.Popen([exe, *base, *extra], stderr=self.stderr, env=env)
        self.commands = self.events = None
        if not expect_start:
            return
        deadline = time.monotonic() + 30
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError("hilod did not start: " + log)
            time.sleep(0.05)
        with open(self.ready) as f:
            r = json.load(f)
        self.commands, self.events = r["command_endpoint"], r["event_endpoint"]

    def log(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def wait_exit(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        finally:
            self.stop()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self.stderr.closed:
            self.stderr.close()
        return self.proc.returncode


def keypair():
    pub, sec = zmq.curve_keypair()
    return pub.decode(), sec.decode()


def call(ctx, endpoint, req, parts=(), keys=None, server_pub=None, timeout_ms=5000):
    """One request on a new DEALER; the reply's JSON, or None when none comes within timeout_ms."""
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    if keys:
        s.curve_serverkey = server_pub.encode()
        s.curve_publickey = keys[0].encode()
        s.curve_secretkey = keys[1].encode()
    s.connect(endpoint)
    try:
        s.send_multipart([b"", req if isinstance(req, bytes) else json.dumps(req).encode(), *parts])
        if not s.poll(timeout_ms):
            return None
        return json.loads(s.recv_multipart()[1])
    finally:
        s.close()
