"""What the live view costs a capture: a 2,000-frame capture through hilod without --http-endpoint, and
with it and a page client attached, alternately (ABBA), in the same run; prints the best time of each,
their ratio, and the median of the per-repetition ratios (the steadier figure on a loaded machine).

usage: bench_live_view.py HILOD [--frames N] [--reps R] [--config bench.yaml] [--client python|chromium]

The bench is tests/controller/sim_fast.yaml (simulated devices with zero latency), so the capture is
bound by the daemon's own work and the preview's share is as large as it can be; a real camera's
exposure only dilutes it. The time is the job's own (catalog started_s → finished_s: show, grab,
chunks made durable, consolidation). Wall time on a shared machine varies by ±20 % between runs, so
the daemon's CPU time over the capture (all its threads, the live view's HTTP thread included: an
upper bound on what the preview can take from the capture) is printed too. Each repetition starts a fresh daemon per mode.
The page client: `python` follows /events as the page does (reads /api/state once, fetches every
/preview/<source>.png a "preview" event announces); `chromium` loads the page in headless Chromium
(needs chromium + chromedriver + python3-selenium).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo import Client  # noqa: E402
from hilo.testing import Daemon  # noqa: E402


class PythonPage:
    """Follows /events like the page: every announced preview image is fetched."""

    def __init__(self, base):
        self.base, self.stop, self.fetched = base, threading.Event(), 0
        urllib.request.urlopen(base + "api/state", timeout=10).read()
        self.resp = urllib.request.urlopen(base + "events", timeout=30)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        event = None
        try:
            for raw in self.resp:
                if self.stop.is_set():
                    return
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "preview":
                    p = json.loads(line[6:])
                    urllib.request.urlopen(f"{self.base}preview/{p['source']}.png?v={p['version']}", timeout=10).read()
                    self.fetched += 1
        except Exception:  # the daemon closed the stream
            pass

    def close(self):
        self.stop.set()
        self.resp.close()
        return self.fetched


class ChromiumPage:
    def __init__(self, base):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.tmp = tempfile.TemporaryDirectory(prefix="hilo_bench_chrome_")
        o = webdriver.ChromeOptions()
        o.binary_location = shutil.which("chromium")
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--user-data-dir=" + self.tmp.name):
            o.add_argument(a)
        self.drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=o)
        self.drv.get(base)
        deadline = time.monotonic() + 15
        while self.drv.execute_script("return document.getElementById('conn').textContent") != "live":
            if time.monotonic() > deadline:
                raise RuntimeError("the page did not connect")
            time.sleep(0.05)

    def close(self):
        v = self.drv.execute_script("return document.getElementById('frame').dataset.version || 0")
        self.drv.quit()
        self.tmp.cleanup()
        return int(v)


def cpu_seconds(pid):
    """utime + stime of a process, all its threads, in seconds (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def capture_seconds(hilod, config, frames, live, client):
    d = Daemon(hilod, config, extra=["--http-endpoint", "127.0.0.1:0"] if live else [], heartbeat_s=1.0)
    proc = d.proc
    page = None
    try:
        r = d.ready
        if live:
            page = (ChromiumPage if client == "chromium" else PythonPage)(r["http_url"])
        with Client(r["command_endpoint"], timeout_ms=30000) as c:
            cpu0 = cpu_seconds(proc.pid)
            started = c.capture(start=0, count=frames)
            while (job := c.job(started["job_id"]))["state"] in ("queued", "running"):
                time.sleep(0.05)
            cpu = cpu_seconds(proc.pid) - cpu0
        if job["state"] != "done" or job["done"] != frames:
            raise RuntimeError(f"capture ended {job['state']} at {job['done']}/{frames}: {job['error']}")
        seen = page.close() if page else 0
        page = None
        return job["finished_s"] - job["started_s"], cpu, seen
    finally:
        if page:
            page.close()
        d.stop(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hilod")
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--config", default=os.path.join(ROOT, "tests", "controller", "sim_fast.yaml"))
    ap.add_argument("--client", choices=("python", "chromium"), default="python")
    a = ap.parse_args()
    off, on, cpu_off, cpu_on = [], [], [], []
    for rep in range(a.reps):
        for live in (False, True) if rep % 2 == 0 else (True, False):
            t, cpu, seen = capture_seconds(a.hilod, a.config, a.frames, live, a.client)
            (on if live else off).append(t)
            (cpu_on if live else cpu_off).append(cpu)
            print(f"rep {rep + 1}: {'live view + ' + a.client + ' page' if live else 'no live view':>28}: {t:.3f} s "
                  f"({a.frames / t:.0f} frames/s), hilod CPU {cpu:.2f} s" + (f", {seen} preview images" if live else ""),
                  flush=True)
    b_off, b_on = min(off), min(on)
    print(f"\n{a.frames}-frame capture, best of {a.reps}: without live view {b_off:.3f} s, with live view and a "
          f"{a.client} page {b_on:.3f} s")
    print(f"ratio with/without = {b_on / b_off:.4f}  (overhead {100 * (b_on / b_off - 1):+.2f} %)")
    c_off, c_on = min(cpu_off), min(cpu_on)
    print(f"hilod CPU time (all threads, the live view's included), least of {a.reps}: without {c_off:.2f} s, with "
          f"{c_on:.2f} s; ratio {c_on / c_off:.4f} (overhead {100 * (c_on / c_off - 1):+.2f} %)")
    pairs = sorted(b / a for a, b in zip(off, on))
    print(f"medians: without {sorted(off)[len(off) // 2]:.3f} s, with {sorted(on)[len(on) // 2]:.3f} s; "
          f"median of the per-repetition ratios {pairs[len(pairs) // 2]:.4f} (range {pairs[0]:.4f}..{pairs[-1]:.4f})")


if __name__ == "__main__":
    main()
