"""The live view (docs/live_view.md): hilod with --http-endpoint on the simulated bench, its page driven
in headless Chromium (selenium + chromium-driver), and its HTTP rules checked with plain requests.

usage: test_live_view.py HILOD REPO_ROOT OUT_DIR
  OUT_DIR  where the screenshot (live_view.png) is kept
Exits 77 (skipped) only when chromium or chromedriver is missing.
"""
import hashlib
import http.client
import json
import os
import shutil
import struct
import sys
import tempfile
import time
import unittest
import urllib.parse
import zlib

HILOD, ROOT, OUT = sys.argv[1:4]
sys.path.insert(0, os.path.join(ROOT, "scripts", "python"))
from hilo.testing import Daemon  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
RUN_ID = "20260101T000000Z-pipeline-7"


def texts(drv, selector):
    """The text of every element matching `selector`, read in one script: the page re-renders its
    tables while the test reads them, so element handles taken one by one can go stale in between."""
    return drv.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent.trim())", selector)

def png(width, height, rgb):
    """A minimal 8-bit RGB PNG of a constant colour (a stand-in report figure)."""
    raw = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def decode_png(data):
    """(width, height, channels, rows of bytes) of a non-interlaced 8-bit grey/RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0, (depth, interlace)
            ch = {0: 1, 2: 3, 6: 4, 4: 2}[ctype]
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), w * ch, [], bytearray(w * ch)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], (prev[i - ch] if i >= ch else 0)
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, ch, rows


def write_report_fixture(data_dir):
    """A finished pipeline run's report (the fields the live view reads) and one figure."""
    run = os.path.join(data_dir, RUN_ID)
    os.makedirs(run)
    report = {"deploy": {"simulated_acc": 0.84},
              "profiles": [{"profile": "moderate", "accuracy": {"none": 0.61, "fractions": [
                  {"fraction": 0.05, "measured": 600, "task": 0.70, "ntkd": 0.765}]}}],
              "figures": ["accuracy_table.png", "../../etc/passwd.png"]}
    with open(os.path.join(run, "report.json"), "w") as f:
        json.dump(report, f)
    with open(os.path.join(run, "accuracy_table.png"), "wb") as f:
        f.write(png(40, 20, (200, 30, 30)))


class Hilod(Daemon):
    """hilod on the fast simulated bench; `extra` carries the live view's options."""

    def __init__(self, *extra, data_dir=None, expect_ready=True):
        super().__init__(HILOD, os.path.join(ROOT, "tests", "controller", "sim_fast.yaml"), data_dir, extra,
                         heartbeat_s=0.5, wait_ready=expect_ready)
        if expect_ready:
            self.url = urllib.parse.urlparse(self.ready["http_url"])

    def client(self):
        return super().client(timeout_ms=10000)

    def request(self, method, path, headers=None):
        c = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=10)
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()


class HttpRules(unittest.TestCase):
    """The rules of the HTTP endpoint, against a real hilod (no browser)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="hilo_live_view_token_")
        cls.token = "s3cret-token-0123456789"
        cls.token_file = os.path.join(cls.tmp.name, "token")
        with open(cls.token_file, "w") as f:
            f.write(cls.token + "\n")
        cls.d = Hilod("--http-endpoint", "127.0.0.1:0", "--http-token-file", cls.token_file, "--http-max-clients", "2")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.tmp.cleanup()

    def test_every_request_needs_the_token(self):
        for path in ("/", "/api/state", "/events", "/preview/frame.png"):
            status, headers, _ = self.d.request("GET", path)
            self.assertEqual(status, 401, path)
            self.assertIn("Bearer", headers.get("WWW-Authenticate", ""))
        self.assertEqual(self.d.request("GET", "/api/state?token=wrong-token-0123456789")[0], 401)
        self.assertEqual(self.d.request("GET", "/api/state", {"Authorization": "Bearer " + self.token[:-1]})[0], 401)
        status, _, body = self.d.request("GET", "/api/state?token=" + self.token)
        self.assertEqual(status, 200)
        self.assertTrue(json.loads(body)["read_only"])
        self.assertEqual(self.d.request("GET", "/api/state", {"Authorization": "Bearer " + self.token})[0], 200)

    def test_only_get_and_head(self):
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            status, headers, _ = self.d.request(method, "/api/state?token=" + self.token)
            self.assertEqual(status, 405, method)
            self.assertEqual(headers.get("Allow"), "GET, HEAD")
        status, headers, body = self.d.request("HEAD", "/?token=" + self.token)
        self.assertEqual((status, body), (200, b""))
        self.assertGreater(int(headers["Content-Length"]), 1000)

    def test_event_streams_are_bounded_and_start_with_the_state(self):
        conns = []
        try:
            for _ in range(2):
                c = http.client.HTTPConnection(self.d.url.hostname, self.d.url.port, timeout=10)
                c.request("GET", "/events?token=" + self.token)
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.getheader("Content-Type"), "text/event-stream")
                lines = [r.fp.readline() for _ in range(4)]
                self.assertIn(b"event: state\n", lines)
                conns.append(c)
            status, _, body = self.d.request("GET", "/events?token=" + self.token)
            self.assertEqual(status, 503, body)
        finally:
            for c in conns:
                c.close()
        deadline = time.monotonic() + 5  # closed streams free their places (noticed at the next event)
        while True:
            c = http.client.HTTPConnection(self.d.url.hostname, self.d.url.port, timeout=10)
            c.request("GET", "/events?token=" + self.token)
            status = c.getresponse().status
            c.close()
            if status == 200:
                break
            self.assertLess(time.monotonic(), deadline, "closed streams kept their places")
            time.sleep(0.1)

    def test_report_paths_stay_in_the_data_directory(self):
        for path in ("/report/../ready.json.png", "/report/%2e%2e/%2e%2e/etc/passwd.png", "/report//etc/passwd.png"):
            status, _, _ = self.d.request("GET", path + "?token=" + self.token)
            self.assertEqual(status, 403, path)
        self.assertEqual(self.d.request("GET", "/report/x/report.json?token=" + self.token)[0], 404)
        self.assertEqual(self.d.request("GET", "/nothing?token=" + self.token)[0], 404)

    def test_bad_requests_get_an_answer_and_the_daemon_keeps_serving(self):
        import socket
        s = socket.create_connection((self.d.url.hostname, self.d.url.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        self.assertIn(b" 431 ", s.recv(200))
        s.close()
        s = socket.create_connection((self.d.url.hostname, self.d.url.port), timeout=10)
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        self.assertIn(b" 400 ", s.recv(200))
        s.close()
        with self.d.client() as c:
            self.assertTrue(c.ping()["pong"])
        self.assertEqual(self.d.request("GET", "/api/state?token=" + self.token)[0], 200)


class Refusals(unittest.TestCase):
    def refused(self, *extra):
        d = Hilod(*extra, expect_ready=False)
        try:
            rc = d.proc.wait(30)
            return rc, d.stderr()
        finally:
            d.stop()

    def test_non_loopback_bind_without_a_token_is_refused(self):
        rc, err = self.refused("--http-endpoint", "0.0.0.0:0")
        self.assertEqual(rc, 2)
        self.assertIn("not loopback; a non-loopback bind requires --http-token-file", err)

    def test_short_token_and_bad_endpoint_are_refused(self):
        with tempfile.NamedTemporaryFile("w", suffix=".token") as f:
            f.write("short\n")
            f.flush()
            rc, err = self.refused("--http-endpoint", "127.0.0.1:0", "--http-token-file", f.name)
        self.assertNotEqual(rc, 0)
        self.assertIn("at least 16 characters", err)
        rc, err = self.refused("--http-endpoint", "127.0.0.1:http")
        self.assertEqual(rc, 2)
        self.assertIn("port must be a number", err)


@unittest.skipIf(not (CHROMIUM and CHROMEDRIVER), "chromium or chromedriver missing")
class PageInChromium(unittest.TestCase):
    def test_frame_updates_progress_reaches_100_and_screenshot_shows_frame_and_table(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By

        tmp = tempfile.TemporaryDirectory(prefix="hilo_live_view_page_")
        data = os.path.join(tmp.name, "data")
        write_report_fixture(data)
        d = Hilod("--http-endpoint", "127.0.0.1:0", "--preview-max-per-s", "20", data_dir=data)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1100",
                  "--user-data-dir=" + os.path.join(tmp.name, "chrome")):
            opts.add_argument(a)
        drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        try:
            drv.get(d.ready["http_url"])
            deadline = time.monotonic() + 15
            while drv.execute_script("return document.getElementById('conn').textContent").strip() != "live":
                self.assertLess(time.monotonic(), deadline, "the page never connected to /events")
                time.sleep(0.05)
            with d.client() as c:
                job = c.capture(start=0, count=3000)
                seen, fetched = set(), set()
                while c.job(job["job_id"])["state"] in ("queued", "running"):
                    # Read in one script call: the page may replace elements between a find and a read.
                    src = drv.execute_script("return document.getElementById('frame').getAttribute('src')")
                    if src and not src.startswith("data:"):  # the page's blank placeholder
                        seen.add(src)
                    status, _, body = d.request("GET", "/preview/frame.png")
                    if status == 200:
                        fetched.add(hashlib.sha256(body).hexdigest())
                    time.sleep(0.05)
                self.assertEqual(c.job(job["job_id"])["state"], "done")
            self.assertGreaterEqual(len(seen), 2, "the frame <img> did not change during the capture")
            self.assertGreaterEqual(len(fetched), 2, "the frame PNG did not change during the capture")
            deadline = time.monotonic() + 10
            progress = "return document.getElementById('progress').textContent"
            while drv.execute_script(progress).strip() != "100 %":
                self.assertLess(time.monotonic(), deadline, "progress stuck at " + drv.execute_script(progress))
                time.sleep(0.05)
            # The report's table and figure, the devices table and the frame statistics.
            cells = texts(drv, "#report td")
            self.assertIn("moderate", cells)
            self.assertIn("76.50", cells)
            self.assertEqual(drv.find_element(By.ID, "report_run").text, RUN_ID)
            figs = drv.find_elements(By.CSS_SELECTOR, "#figures img")
            loaded = [f.get_attribute("alt") for f in figs if drv.execute_script("return arguments[0].naturalWidth", f) > 0]
            self.assertEqual(loaded, ["accuracy_table.png"])  # the "../" figure is refused
            self.assertIn("saturated", drv.find_element(By.ID, "framestats").text)
            self.assertIn("ready", texts(drv, "#devices td"))
            frame = drv.find_element(By.ID, "frame")
            self.assertGreater(drv.execute_script("return arguments[0].naturalWidth", frame), 0)
            shot = os.path.join(OUT, "live_view.png")
            self.assertTrue(drv.save_screenshot(shot))
            with open(shot, "rb") as f:
                w, h, ch, rows = decode_png(f.read())
            # A blank frame would be one grey level; a captured one has contrast (and is not the page's white).
            r = frame.rect
            x0, y0 = int(r["x"]), int(r["y"])
            values = [rows[y][x * ch] for y in range(y0 + 2, y0 + int(r["height"]) - 2, 4)
                      for x in range(x0 + 2, x0 + int(r["width"]) - 2, 4)]
            self.assertGreater(max(values) - min(values), 40, "the frame in the screenshot is blank")
            # The table scrolls inside its box (a report with every mode's column is wider than the window):
            # the box, which stays within the page, must show it.
            t = drv.find_element(By.ID, "report_box").rect
            self.assertLessEqual(t["x"] + t["width"], w, "the report box runs past the window")
            table_px = [rows[y][x * ch] for y in range(int(t["y"]), min(h, int(t["y"] + t["height"])))
                        for x in range(int(t["x"]), int(t["x"] + t["width"]))]
            self.assertLess(min(table_px), 100, "the report table is not visible in the screenshot")
            print(f"screenshot {shot}: {w}x{h}, {len(seen)} frame images seen during the capture")
        finally:
            drv.quit()
            d.stop()
            tmp.cleanup()


if __name__ == "__main__":
    if not (CHROMIUM and CHROMEDRIVER):
        print("SKIPPED: chromium/chromedriver not installed (scripts/setup.sh installs them)")
        sys.exit(77)
    os.makedirs(OUT, exist_ok=True)
    unittest.main(argv=sys.argv[:1], verbosity=2)
