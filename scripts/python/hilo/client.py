"""hilod client: request/reply over a DEALER socket, numpy arrays as binary parts, PUB events.

    from hilo import Client
    with Client("tcp://127.0.0.1:5555", events="tcp://127.0.0.1:5556") as c:
        c.ping()
        frame = c.grab()                                   # numpy array
        job = c.capture(start=0, count=1000, wait=True)    # dataset slice, waits for the job
        run = c.run(job["run_id"], arrays=["frames", "labels"])
        run["arrays"]["frames"].shape                       # (1000, H, W)

        job = c.run_job("capture", {"dataset": "fashion-mnist", "start": 0, "count": 10},
                        on_document=lambda name, doc: print(name, doc["uid"]))

Errors come back as HiloError with .code (the stable protocol code) and .message.
The protocol, events and run documents are described in docs/protocol.md.
"""
from __future__ import annotations

import itertools
import json
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import zmq

PROTOCOL_VERSION = 1
FINAL_STATES = frozenset({"done", "failed", "cancelled", "interrupted"})
RUN_DOCUMENTS = ("run.start", "run.descriptor", "run.event", "run.stop")

Json = Dict[str, Any]
Event = Tuple[str, Json]
ProgressCallback = Callable[[int, int], None]
DocumentCallback = Callable[[str, Json], None]


class HiloError(Exception):
    """An error reply: ``code`` is the stable protocol error code, ``message`` the daemon's text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _decode_arrays(obj: Any, parts: Sequence[Optional[bytes]]) -> Any:
    """Replaces every ``{dtype, shape, part}`` descriptor in obj with the numpy array it describes."""
    if isinstance(obj, dict):
        if set(obj) == {"dtype", "shape", "part"} and isinstance(obj["part"], int):
            buf = parts[obj["part"]]
            if buf is None:
                raise HiloError("bad_parts", f"reply references part {obj['part']}, which is not a binary part")
            return np.frombuffer(buf, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
        return {k: _decode_arrays(v, parts) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode_arrays(v, parts) for v in obj]
    return obj


class Client:
    """A connection to one hilod: commands on ``endpoint``, events (optional) on ``events``.

    ``timeout_ms`` bounds the wait for each reply (TimeoutError beyond it). Not thread-safe: use one
    Client per thread. Usable as a context manager (closes its sockets).
    """

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5555", events: Optional[str] = None,
                 timeout_ms: int = 30000, context: Optional[zmq.Context] = None) -> None:
        self._ctx: zmq.Context = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self._timeout_ms = timeout_ms
        self._ids = itertools.count(1)
        self._events_endpoint = events
        self._sub: Optional[zmq.Socket] = None
        self._prefixes: set[str] = set()

    def close(self) -> None:
        """Closes both sockets; the Client cannot be used afterwards."""
        self._sock.close(0)
        if self._sub is not None:
            self._sub.close(0)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------------
    def request_raw(self, frames: Iterable[bytes]) -> List[bytes]:
        """Sends raw frames (after the delimiter) and returns the reply frames; for protocol tests."""
        self._sock.send_multipart([b""] + list(frames))
        if not self._sock.poll(self._timeout_ms):
            raise TimeoutError(f"no reply within {self._timeout_ms} ms")
        reply = self._sock.recv_multipart()
        return reply[1:]

    def call(self, cmd: str, args: Optional[Mapping[str, Any]] = None,
             arrays: Optional[Mapping[str, np.ndarray]] = None) -> Any:
        """Sends ``cmd`` with ``args``; ``arrays`` maps argument names to numpy arrays sent as binary parts.

        Returns the result with every array descriptor replaced by a numpy array. Raises HiloError for
        an error reply and TimeoutError when no reply comes within ``timeout_ms``.
        """
        body_args: Json = dict(args or {})
        parts: List[bytes] = []
        for name, a in (arrays or {}).items():
            a = np.ascontiguousarray(a)
            if a.dtype.byteorder == ">":
                a = a.astype(a.dtype.newbyteorder("<"))
            parts.append(a.tobytes())
            body_args[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "part": len(parts)}
        rid = next(self._ids)
        req = {"id": rid, "cmd": cmd, "args": body_args, "v": PROTOCOL_VERSION}
        frames = self.request_raw([json.dumps(req).encode()] + parts)
        body = json.loads(frames[0])
        if body.get("id") != rid:
            raise HiloError("internal", f"reply id {body.get('id')} does not match request id {rid}")
        if not body["ok"]:
            raise HiloError(body["error"]["code"], body["error"]["message"])
        return _decode_arrays(body["result"], [None] + frames[1:])

    def ping(self) -> Json:
        """``{"pong": true}``."""
        return self.call("ping")

    def version(self) -> Json:
        """Protocol version, daemon version and the command names."""
        return self.call("version")

    def devices(self) -> List[Json]:
        """One description per device role (input_slm, element_slm, camera)."""
        return self.call("devices.list")["devices"]

    def configure(self, **settings: Any) -> Json:
        """Camera settings (exposure_ms, gain_db, pixel_format, trigger_mode); ``busy`` during a job."""
        return self.call("devices.configure", settings)

    def show(self, pattern: np.ndarray) -> Json:
        """Shows ``pattern`` (uint8 or uint16, exactly the input SLM's rows × cols)."""
        return self.call("slm.show", arrays={"pattern": pattern})

    def grab(self, timeout_ms: int = 1000) -> np.ndarray:
        """One camera frame (rows × cols, uint8 or uint16)."""
        return self.call("camera.grab", {"timeout_ms": timeout_ms})["frame"]

    def jobs(self) -> List[Json]:
        """Job records, newest first."""
        return self.call("jobs.list")["jobs"]

    def job(self, job_id: int) -> Json:
        """The job record of ``job_id`` (HiloError not_found if unknown)."""
        return self.call("jobs.status", {"job_id": job_id})["job"]

    def cancel(self, job_id: int) -> Json:
        """Asks the job to stop; returns its record after the request."""
        return self.call("jobs.cancel", {"job_id": job_id})["job"]

    def runs(self) -> List[Json]:
        """Run records, newest first."""
        return self.call("runs.list")["runs"]

    def run(self, run_id: str, arrays: Sequence[str] = ()) -> Json:
        """A run's record, directory and manifest, plus the named arrays as numpy arrays."""
        return self.call("runs.get", {"run_id": run_id, "arrays": list(arrays)})

    def stats(self) -> Json:
        """Every counter the daemon keeps: requests, overloaded, replies_dropped, ZAP, jobs, devices."""
        return self.call("daemon.stats")

    def shutdown(self) -> Json:
        """Stops the daemon as SIGTERM does."""
        return self.call("shutdown")

    # -- jobs -----------------------------------------------------------------------------------
    def capture(self, start: Optional[int] = None, count: Optional[int] = None, split: str = "train",
                dataset: str = "fashion-mnist", inputs: Optional[np.ndarray] = None, wait: bool = False,
                on_progress: Optional[ProgressCallback] = None, timeout_s: float = 600, **options: Any) -> Json:
        """Starts a capture job of a dataset slice [start, start+count) or of ``inputs`` (uint8, N×h×w).

        With wait=True returns the final job record (progress from events when an event endpoint was
        given, else by polling); else the ``capture`` reply (job_id, run_id, state, total).
        """
        if inputs is not None:
            started = self.call("capture", options, arrays={"inputs": np.asarray(inputs, dtype=np.uint8)})
        else:
            if wait and self._events_endpoint:
                self.subscribe("job.")
            started = self.call("capture", dict(options, dataset=dataset, split=split, start=start, count=count))
        if not wait:
            return started
        return self.wait(started["job_id"], on_progress=on_progress, timeout_s=timeout_s)

    def pipeline(self, config: Optional[Json] = None, wait: bool = False,
                 on_progress: Optional[ProgressCallback] = None, timeout_s: float = 3600) -> Json:
        """Starts the hardware-in-the-loop pipeline (docs/pipeline.md).

        ``config`` is a dict of the pipeline settings (absent keys: the defaults). With wait=True returns
        the final job record; the report is <data dir>/<run_id>/report.json.
        """
        if wait and self._events_endpoint:
            self.subscribe("job.")
        started = self.call("pipeline", {} if config is None else {"config": config})
        if not wait:
            return started
        return self.wait(started["job_id"], on_progress=on_progress, timeout_s=timeout_s)

    def run_job(self, cmd: str, args: Optional[Mapping[str, Any]] = None,
                arrays: Optional[Mapping[str, np.ndarray]] = None, *,
                on_progress: Optional[ProgressCallback] = None, on_document: Optional[DocumentCallback] = None,
                timeout_s: float = 600) -> Json:
        """Starts a job (``capture``, ``pipeline``, ``train-teacher``, ``distill``) and follows it to its end.

        Subscribes to job and run events first (and waits until the subscription is live), so
        ``on_progress(done, total)`` and ``on_document(name, document)`` see the job from its start; the
        run documents are delivered in order up to the run's stop document. Returns the final job
        record (from ``jobs.status``, which is authoritative). Needs an event endpoint. Raises HiloError
        when the daemon refuses the job and TimeoutError after ``timeout_s``.
        """
        self.subscribe("job.", wait_live=True)
        self.subscribe("run.")
        started = self.call(cmd, args, arrays)
        job_id, run_id = started["job_id"], started["run_id"]
        deadline = time.monotonic() + timeout_s
        final: Optional[Json] = None
        stopped = on_document is None
        while time.monotonic() < deadline:
            ev = self.next_event(timeout_ms=200)
            if ev is not None:
                topic, body = ev
                if topic.startswith("run.") and body.get("run_id") == run_id:
                    if on_document is not None:
                        on_document(topic, body)
                    if topic == "run.stop":
                        stopped = True
                elif body.get("job_id") == job_id:
                    if topic == "job.progress" and on_progress is not None:
                        on_progress(body["done"], body["total"])
                    if topic == "job.state" and body["state"] in FINAL_STATES:
                        final = self.job(job_id)
            elif final is None:
                rec = self.job(job_id)  # events are best-effort: poll when the socket is quiet
                if rec["state"] in FINAL_STATES:
                    final = rec
            elif not stopped:
                stopped = True  # quiet after the job ended: a stop document was dropped or never sent
            if final is not None and stopped:
                return final
        raise TimeoutError(f"job {job_id} did not finish within {timeout_s} s")

    def wait(self, job_id: int, on_progress: Optional[ProgressCallback] = None, timeout_s: float = 600) -> Json:
        """Waits for the job to reach a final state; returns its record (TimeoutError after timeout_s)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ev = self.next_event(timeout_ms=500) if self._sub is not None else None
            if ev is not None:
                topic, body = ev
                if body.get("job_id") != job_id:
                    continue
                if topic == "job.progress" and on_progress:
                    on_progress(body["done"], body["total"])
                if topic == "job.state" and body["state"] in FINAL_STATES:
                    return self.job(job_id)
                continue
            rec = self.job(job_id)  # events are best-effort; the catalog is authoritative
            if rec["state"] in FINAL_STATES:
                return rec
            if self._sub is None:
                time.sleep(0.05)
        raise TimeoutError(f"job {job_id} did not finish within {timeout_s} s")

    # -- events ---------------------------------------------------------------------------------
    def subscribe(self, prefix: str = "", wait_live: bool = False, timeout_s: float = 10) -> None:
        """Subscribes to events whose topic starts with ``prefix`` ("" = all).

        ZeroMQ delivers nothing until the subscription has reached the daemon; with wait_live=True this
        returns only once an event (at the latest the next heartbeat) has arrived, so that nothing
        published afterwards is missed. Events read while waiting are dropped. Raises ValueError
        without an event endpoint and TimeoutError when no event comes within timeout_s.
        """
        if self._events_endpoint is None:
            raise ValueError("no event endpoint given")
        if self._sub is None:
            self._sub = self._ctx.socket(zmq.SUB)
            self._sub.setsockopt(zmq.LINGER, 0)
            self._sub.connect(self._events_endpoint)
        if prefix not in self._prefixes:
            self._sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
            self._prefixes.add(prefix)
        if wait_live:
            if "heartbeat" not in self._prefixes and not any("heartbeat".startswith(p) for p in self._prefixes):
                self._sub.setsockopt(zmq.SUBSCRIBE, b"heartbeat")
                self._prefixes.add("heartbeat")
            if not self._sub.poll(int(timeout_s * 1000)):
                raise TimeoutError(f"no event within {timeout_s} s (is the daemon's heartbeat on?)")
            while self._sub.poll(0):
                self._sub.recv_multipart()

    def next_event(self, timeout_ms: int = 1000) -> Optional[Event]:
        """``(topic, body)`` of the next event, or None after timeout_ms."""
        if self._sub is None or not self._sub.poll(timeout_ms):
            return None
        topic, payload = self._sub.recv_multipart()
        return topic.decode(), json.loads(payload)

    def events(self, prefix: str = "", idle_timeout_s: Optional[float] = None) -> Iterator[Event]:
        """Yields ``(topic, body)`` for every event whose topic starts with ``prefix``.

        Ends after ``idle_timeout_s`` seconds without such an event (None: never ends by itself).
        """
        self.subscribe(prefix)
        last = time.monotonic()
        while True:
            ev = self.next_event(timeout_ms=100)
            if ev is not None and ev[0].startswith(prefix):
                last = time.monotonic()
                yield ev
            elif idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                return

    def follow_run(self, run_id: str, timeout_s: float = 600) -> Iterator[Event]:
        """Yields the run documents ``(name, document)`` of ``run_id`` until its ``run.stop``.

        Subscribe (``subscribe("run.", wait_live=True)``) before the job starts to see its start
        document; a resumed run yields a second start. Raises TimeoutError when no stop document comes
        within ``timeout_s``.
        """
        self.subscribe("run.")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ev = self.next_event(timeout_ms=100)
            if ev is None or ev[0] not in RUN_DOCUMENTS or ev[1].get("run_id") != run_id:
                continue
            yield ev
            if ev[0] == "run.stop":
                return
        raise TimeoutError(f"run {run_id} sent no stop document within {timeout_s} s")
