"""Load test of the real hilod in simulator mode, on loopback only.

usage: test_load_hilod.py HILOD REPO_ROOT [CLIENTS REQUESTS]   (default 32 clients x 1000 requests)

CLIENTS threads each send REQUESTS requests (a mix of read commands, device configuration and camera
grabs) over their own REQ socket while 4 subscribers take every event. Checked: every request is answered
within 10 s, every reply is ok, every subscriber sees events, and the daemon's resident memory (VmRSS)
grows by less than 10 % from the end of a warm-up (the first 10 % of each client's requests) to the end.
Prints throughput, latency percentiles and the RSS figures.
"""
import json
import os
import sys
import threading
import time

import zmq

HILOD, ROOT = sys.argv[1:3]
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo.testing import Daemon  # noqa: E402

CLIENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 32
REQUESTS = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
SUBSCRIBERS = 4
WARMUP = REQUESTS // 10

MIX = [
    ("ping", {}), ("version", {}), ("devices.status", {}), ("devices.list", {}), ("jobs.list", {"limit": 5}),
    ("runs.list", {"limit": 5}), ("ping", {}), ("devices.configure", {"gain_db": 0.0}), ("devices.status", {}),
]
GRAB_EVERY = 50  # one camera.grab (a simulated frame, binary reply part) per 50 requests


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    d = Daemon(HILOD, os.path.join(ROOT, "configs", "sim.yaml"), heartbeat_s=0.05)
    proc = d.proc
    ctx = zmq.Context()
    failures = []
    try:
        eps = d.ready

        # The simulated camera images the input SLM: show a pattern once so that grabs have an input.
        s = ctx.socket(zmq.REQ)
        s.linger = 0
        s.connect(eps["command_endpoint"])
        s.send_multipart([json.dumps({"id": "setup", "cmd": "slm.show",
                                      "args": {"pattern": {"dtype": "|u1", "shape": [28, 28], "part": 1}}}).encode(),
                          bytes(range(28)) * 28])
        if not s.poll(10000) or not json.loads(s.recv_multipart()[0])["ok"]:
            raise RuntimeError("slm.show before the load failed")
        s.close()

        stop = threading.Event()
        events = [0] * SUBSCRIBERS

        def subscriber(k):
            s = ctx.socket(zmq.SUB)
            s.linger = 0
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect(eps["event_endpoint"])
            while not stop.is_set():
                if s.poll(100):
                    s.recv_multipart()
                    events[k] += 1
            s.close()

        warm = threading.Barrier(CLIENTS + 1)
        latencies = [[] for _ in range(CLIENTS)]
        grabs = [0] * CLIENTS

        def client(k):
            s = ctx.socket(zmq.REQ)
            s.linger = 0
            s.connect(eps["command_endpoint"])
            try:
                for i in range(REQUESTS):
                    if i == WARMUP:
                        warm.wait(60)
                    if (i + k) % GRAB_EVERY == 0:
                        cmd, args = "camera.grab", {"timeout_ms": 5000}
                    else:
                        cmd, args = MIX[(i + k) % len(MIX)]
                    t0 = time.perf_counter()
                    s.send(json.dumps({"id": [k, i], "cmd": cmd, "args": args, "v": 1}).encode())
                    if not s.poll(10000):
                        failures.append(f"client {k} request {i} ({cmd}) unanswered after 10 s")
                        return
                    frames = s.recv_multipart()
                    latencies[k].append(time.perf_counter() - t0)
                    r = json.loads(frames[0])
                    if r.get("id") != [k, i] or not r.get("ok"):
                        failures.append(f"client {k} request {i} ({cmd}): {r}")
                        return
                    if cmd == "camera.grab":
                        grabs[k] += 1
                        if len(frames) != 2:
                            failures.append(f"client {k}: grab reply has {len(frames)} frames")
                            return
            except threading.BrokenBarrierError:
                failures.append(f"client {k}: warm-up barrier broken")
            finally:
                if failures:
                    warm.abort()  # the others stop waiting for a client that gave up
                s.close()

        subs = [threading.Thread(target=subscriber, args=(k,)) for k in range(SUBSCRIBERS)]
        for t in subs:
            t.start()
        time.sleep(0.3)
        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        t_start = time.perf_counter()
        for t in threads:
            t.start()
        peak = 0
        try:
            warm.wait(60)
        except threading.BrokenBarrierError:
            pass
        rss_warm = rss_kib(proc.pid)
        t_warm = time.perf_counter()
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_kib(proc.pid))
            time.sleep(0.05)
        for t in threads:
            t.join()
        t_end = time.perf_counter()
        rss_end = rss_kib(proc.pid)
        stop.set()
        for t in subs:
            t.join()

        lat = sorted(x for l in latencies for x in l)
        answered = len(lat)
        total = CLIENTS * REQUESTS
        after_warm = CLIENTS * (REQUESTS - WARMUP)
        growth = (rss_end - rss_warm) / rss_warm
        print(f"clients {CLIENTS} x {REQUESTS} requests, {SUBSCRIBERS} subscribers")
        print(f"answered {answered}/{total}, camera.grab {sum(grabs)}, wall {t_end - t_start:.2f} s, "
              f"throughput after warm-up {after_warm / (t_end - t_warm):.0f} req/s")
        if lat:
            print(f"latency p50 {lat[len(lat) // 2] * 1e3:.2f} ms, p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f} ms, "
                  f"max {lat[-1] * 1e3:.2f} ms")
        print(f"events per subscriber {events}")
        print(f"VmRSS after warm-up {rss_warm} KiB, peak {peak} KiB, end {rss_end} KiB, growth {growth * 100:.2f} %")
        if failures:
            print("FAIL:", *failures[:10], sep="\n  ")
            return 1
        if answered != total:
            print(f"FAIL: {total - answered} requests unanswered")
            return 1
        if min(events) == 0:
            print("FAIL: a subscriber received no events")
            return 1
        if proc.poll() is not None:
            print("FAIL: hilod exited during the run")
            return 1
        if growth >= 0.10:
            print("FAIL: resident memory grew by 10 % or more after the warm-up")
            return 1
        print("PASS")
        return 0
    finally:
        d.stop()
        ctx.term()

if __name__ == "__main__":
    sys.exit(main())
