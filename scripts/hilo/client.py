"""hilod client: request/reply over a DEALER socket, numpy arrays as binary parts, PUB events.

    from hilo import Client
    with Client("tcp://127.0.0.1:5555", events="tcp://127.0.0.1:5556") as c:
        c.ping()
        frame = c.grab()                                   # numpy array
        job = c.capture(start=0, count=1000, wait=True)    # dataset slice, waits for the job
        run = c.run(job["run_id"], arrays=["frames", "labels"])
        run["arrays"]["frames"].shape                       # (1000, H, W)

Errors come back as HiloError with .code (the stable protocol code) and .message.
"""
import itertools
import json
import os
import time

import numpy as np
import zmq

PROTOCOL_VERSION = 1
_FINAL = {"done", "failed", "cancelled", "interrupted"}


class HiloError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _decode_arrays(obj, parts):
    """Replaces every {dtype, shape, part} descriptor in obj with the numpy array it describes."""
    if isinstance(obj, dict):
        if set(obj) == {"dtype", "shape", "part"} and isinstance(obj["part"], int):
            buf = parts[obj["part"]]
            return np.frombuffer(buf, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
        return {k: _decode_arrays(v, parts) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode_arrays(v, parts) for v in obj]
    return obj


class Client:
    def __init__(self, endpoint="tcp://127.0.0.1:5555", events=None, timeout_ms=30000, context=None):
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self._timeout_ms = timeout_ms
        self._ids = itertools.count(1)
        self._events_endpoint = events
        self._sub = None

    def close(self):
        self._sock.close(0)
        if self._sub is not None:
            self._sub.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests -------------------------------------------------------------------------------
    def request_raw(self, frames):
        """Sends raw frames (after the delimiter) and returns the reply frames; for protocol tests."""
        self._sock.send_multipart([b""] + list(frames))
        if not self._sock.poll(self._timeout_ms):
            raise TimeoutError(f"no reply within {self._timeout_ms} ms")
        reply = self._sock.recv_multipart()
        return reply[1:]

    def call(self, cmd, args=None, arrays=None):
        """Sends cmd with args; `arrays` maps argument names to numpy arrays sent as binary parts.
        Returns the result with every array descriptor replaced by a numpy array."""
        args = dict(args or {})
        parts = []
        for name, a in (arrays or {}).items():
            a = np.ascontiguousarray(a)
            if a.dtype.byteorder == ">":
                a = a.astype(a.dtype.newbyteorder("<"))
            parts.append(a.tobytes())
            args[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "part": len(parts)}
        rid = next(self._ids)
        req = {"id": rid, "cmd": cmd, "args": args, "v": PROTOCOL_VERSION}
        frames = self.request_raw([json.dumps(req).encode()] + parts)
        body = json.loads(frames[0])
        if body.get("id") != rid:
            raise HiloError("internal", f"reply id {body.get('id')} does not match request id {rid}")
        if not body["ok"]:
            raise HiloError(body["error"]["code"], body["error"]["message"])
        return _decode_arrays(body["result"], [None] + frames[1:])

    def ping(self):
        return self.call("ping")

    def version(self):
        return self.call("version")

    def devices(self):
        return self.call("devices.list")["devices"]

    def configure(self, **settings):
        return self.call("devices.configure", settings)

    def show(self, pattern):
        return self.call("slm.show", arrays={"pattern": pattern})

    def grab(self, timeout_ms=1000):
        return self.call("camera.grab", {"timeout_ms": timeout_ms})["frame"]

    def jobs(self):
        return self.call("jobs.list")["jobs"]

    def job(self, job_id):
        return self.call("jobs.status", {"job_id": job_id})["job"]

    def cancel(self, job_id):
        return self.call("jobs.cancel", {"job_id": job_id})["job"]

    def runs(self):
        return self.call("runs.list")["runs"]

    def run(self, run_id, arrays=()):
        return self.call("runs.get", {"run_id": run_id, "arrays": list(arrays)})

    def shutdown(self):
        return self.call("shutdown")

    def capture(self, start=None, count=None, split="train", dataset="fashion-mnist", inputs=None, wait=False,
                on_progress=None, timeout_s=600, **options):
        """Starts a capture job of a dataset slice [start, start+count) or of `inputs` (uint8, N×h×w).
        With wait=True returns the final job record (progress from events when an event endpoint was
        given, else by polling)."""
        if inputs is not None:
            started = self.call("capture", options, arrays={"inputs": np.asarray(inputs, dtype=np.uint8)})
        else:
            if wait and self._events_endpoint:
                self.subscribe("job.")
            started = self.call("capture", dict(options, dataset=dataset, split=split, start=start, count=count))
        if not wait:
            return started
        return self.wait(started["job_id"], on_progress=on_progress, timeout_s=timeout_s)

    def pipeline(self, config=None, wait=False, on_progress=None, timeout_s=3600):
        """Starts the hardware-in-the-loop pipeline (docs/pipeline.md); `config` is a dict of the pipeline
        settings (absent keys: the defaults). With wait=True returns the final job record; the report is
        <data dir>/<run_id>/report.json."""
        if wait and self._events_endpoint:
            self.subscribe("job.")
        started = self.call("pipeline", {} if config is None else {"config": config})
        if not wait:
            return started
        return self.wait(started["job_id"], on_progress=on_progress, timeout_s=timeout_s)

    def wait(self, job_id, on_progress=None, timeout_s=600):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ev = self.next_event(timeout_ms=500) if self._sub is not None else None
            if ev is not None:
                topic, body = ev
                if body.get("job_id") != job_id:
                    continue
                if topic == "job.progress" and on_progress:
                    on_progress(body["done"], body["total"])
                if topic == "job.state" and body["state"] in _FINAL:
                    return self.job(job_id)
                continue
            rec = self.job(job_id)  # events are best-effort; the catalog is authoritative
            if rec["state"] in _FINAL:
                return rec
            if self._sub is None:
                time.sleep(0.05)
        raise TimeoutError(f"job {job_id} did not finish within {timeout_s} s")

    # -- events ---------------------------------------------------------------------------------
    def subscribe(self, prefix=""):
        if self._events_endpoint is None:
            raise ValueError("no event endpoint given")
        if self._sub is None:
            self._sub = self._ctx.socket(zmq.SUB)
            self._sub.setsockopt(zmq.LINGER, 0)
            self._sub.connect(self._events_endpoint)
        self._sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())

    def next_event(self, timeout_ms=1000):
        """(topic, body) of the next event, or None after timeout_ms."""
        if self._sub is None or not self._sub.poll(timeout_ms):
            return None
        topic, payload = self._sub.recv_multipart()
        return topic.decode(), json.loads(payload)


def load_run(run_dir):
    """Reads a run directory straight from disk: (manifest, {name: array}). Uses the consolidated
    arrays when the run finished, else concatenates the chunks its manifest lists."""
    with open(os.path.join(run_dir, "manifest.json")) as f:
        manifest = json.load(f)
    arrays = {name: np.load(os.path.join(run_dir, a["file"])) for name, a in manifest.get("arrays", {}).items()}
    chunks = manifest.get("chunks", [])
    if chunks:
        for name in chunks[0]["files"]:
            arrays[name] = np.concatenate([np.load(os.path.join(run_dir, c["files"][name])) for c in chunks])
    return manifest, arrays
