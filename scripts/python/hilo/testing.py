"""A hilod process for tests and scripts: loopback wildcard ports, its own data directory, stderr kept.

Every test that starts a daemon uses :class:`Daemon`; :func:`call` sends one raw request (optionally over
CurveZMQ) for the tests that check the wire itself rather than the client.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from typing import Any, Dict, Mapping, Optional, Sequence

import zmq

from .client import Client


class Daemon:
    """Starts ``exe`` (hilod, or a test daemon with its options) and, unless ``wait_ready`` is false,
    waits until it serves.

    ``config``: the bench config, passed with ``--config``, a data directory, a ready file, the
    heartbeat and (``loopback_ports``) wildcard loopback endpoints; None passes none of these (the
    options come from ``extra``, e.g. an ``--options-file``), and then ``ready_file`` says where the
    daemon writes its ready file. ``data_dir``: None for a fresh temporary directory, removed by
    stop(). ``extra`` follows the generated options. ``env``: the child's environment (None: ours).

    After start: ``commands``, ``events`` (the bound endpoints) and ``ready`` (the ready file's whole
    content, e.g. ``http_url``). Raises RuntimeError with the daemon's stderr when it exits or is not
    ready within ``start_timeout_s``.
    """

    def __init__(self, exe: str, config: Optional[str] = None, data_dir: Optional[str] = None,
                 extra: Sequence[str] = (), *, heartbeat_s: float = 0.2, start_timeout_s: float = 30,
                 wait_ready: bool = True, env: Optional[Mapping[str, str]] = None,
                 ready_file: Optional[str] = None, loopback_ports: bool = True) -> None:
        self._tmp: Optional[tempfile.TemporaryDirectory[str]] = tempfile.TemporaryDirectory(prefix="hilo_daemon_")
        self._final_log = ""
        if data_dir is None:
            data_dir = os.path.join(self._tmp.name, "data")
        self.data = data_dir
        os.makedirs(self.data, exist_ok=True)
        self._log_path = os.path.join(self._tmp.name, "stderr.txt")
        self._log = open(self._log_path, "w")
        self.ready_file = ready_file or os.path.join(self._tmp.name, "ready.json")
        args = [exe]
        if config is not None:
            args += ["--config", config, "--data-dir", self.data, "--ready-file", self.ready_file,
                     "--heartbeat-s", str(heartbeat_s)]
            if loopback_ports:
                args += ["--command-endpoint", "tcp://127.0.0.1:*", "--event-endpoint", "tcp://127.0.0.1:*"]
        args += list(extra)
        self.proc = subprocess.Popen(args, stderr=self._log, env=None if env is None else dict(env))
        self.ready: Dict[str, Any] = {}
        self.commands: Optional[str] = None
        self.events: Optional[str] = None
        if wait_ready:
            self.wait_ready(start_timeout_s)

    def wait_ready(self, timeout_s: float = 30) -> None:
        """Waits for the ready file and reads the endpoints from it (see the class)."""
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(self.ready_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.stderr()
                self.stop()
                raise RuntimeError(f"hilod did not start (exit {self.proc.returncode}): {err}")
            time.sleep(0.02)
        with open(self.ready_file) as f:
            self.ready = json.load(f)
        self.commands = self.ready["command_endpoint"]
        self.events = self.ready["event_endpoint"]

    def client(self, **kw: Any) -> Client:
        """A Client of this daemon, with its event endpoint."""
        assert self.commands is not None, "the daemon is not ready"
        return Client(self.commands, events=self.events, **kw)

    def stderr(self) -> str:
        """What the daemon wrote to stderr so far."""
        if self._tmp is None:
            return self._final_log
        self._log.flush()
        with open(self._log_path) as f:
            return f.read()

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM (the daemon checkpoints its job and stops); returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def wait_exit(self, timeout_s: float = 30) -> int:
        """Waits for the daemon to exit on its own (e.g. refused options); returns its exit status."""
        try:
            return self.proc.wait(timeout_s)
        finally:
            self.stop()

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush anything; then stop()'s clean-up."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.stop()

    def stop(self, timeout_s: float = 20) -> Optional[int]:
        """SIGTERM, then SIGKILL after ``timeout_s``; keeps the log (stderr() still answers) and
        removes the temporary directory (with the data directory when none was given). Returns the
        exit status. Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._tmp is not None:
            self._final_log = self.stderr()
            self._log.close()
            self._tmp.cleanup()
            self._tmp = None
        return self.proc.returncode

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def keypair() -> "tuple[str, str]":
    """A CurveZMQ key pair (public, secret), Z85 text."""
    pub, sec = zmq.curve_keypair()
    return pub.decode(), sec.decode()


def call(ctx: zmq.Context, endpoint: str, req: Any, parts: Sequence[bytes] = (),
         keys: Optional["tuple[str, str]"] = None, server_pub: Optional[str] = None,
         timeout_ms: int = 5000) -> Optional[Dict[str, Any]]:
    """One request (a dict, or raw bytes) on a new DEALER; the reply's JSON, or None when none comes
    within ``timeout_ms``. ``keys`` and ``server_pub`` make it a CurveZMQ client."""
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    if keys:
        assert server_pub is not None
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
