"""A hilod process for tests and scripts: loopback wildcard ports, its own data directory."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from typing import Any, Optional, Sequence

from .client import Client


class Daemon:
    """Starts ``exe`` (hilod, or a daemon with its options) and waits until it serves.

    ``config`` is the bench config; ``data_dir`` the data directory (None: a fresh temporary one,
    removed by stop()). The bound endpoints are read from the daemon's ready file: ``commands`` and
    ``events``. Raises RuntimeError (with the daemon's stderr) when it exits or does not become ready
    within ``start_timeout_s``.
    """

    def __init__(self, exe: str, config: str, data_dir: Optional[str] = None, extra: Sequence[str] = (),
                 heartbeat_s: float = 0.2, start_timeout_s: float = 30) -> None:
        self._tmp: Optional[tempfile.TemporaryDirectory[str]] = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hilo_daemon_")
            data_dir = os.path.join(self._tmp.name, "data")
        self.data = data_dir
        os.makedirs(self.data, exist_ok=True)
        self._log = tempfile.TemporaryFile(mode="w+")
        ready = os.path.join(self.data, f".ready-{os.getpid()}-{time.monotonic_ns()}.json")
        self.proc = subprocess.Popen(
            [exe, "--config", config, "--command-endpoint", "tcp://127.0.0.1:*", "--event-endpoint",
             "tcp://127.0.0.1:*", "--data-dir", self.data, "--ready-file", ready, "--heartbeat-s",
             str(heartbeat_s), *extra],
            stderr=self._log)
        deadline = time.monotonic() + start_timeout_s
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.stderr()
                self.stop()
                raise RuntimeError(f"{exe} did not start: {err}")
            time.sleep(0.02)
        with open(ready) as f:
            r = json.load(f)
        os.remove(ready)
        self.commands: str = r["command_endpoint"]
        self.events: str = r["event_endpoint"]

    def client(self, **kw: Any) -> Client:
        """A Client of this daemon, with its event endpoint."""
        return Client(self.commands, events=self.events, **kw)

    def stderr(self) -> str:
        """What the daemon wrote to stderr so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM (the daemon checkpoints its job and stops); returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        """Kills the daemon if it still runs and removes a temporary data directory."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
