"""scripts/emulated-lab.sh ends when hilod ends, even after its X server died.

usage: test_emulated_lab_script.py BUILD_DIR REPO_ROOT

Regression: with the X server killed and then hilod sent SIGTERM (the order a crashed X session and a
stopping service produce), hilod stopped but the script waited for every child, and hilo-emulator,
idle and so unaware that its display was gone, kept it waiting forever. Now the script waits for hilod
only and then stops the emulator and the X server itself.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BUILD, ROOT = sys.argv[1:3]


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    res = {}
    for c in out:
        try:
            with open(f"/proc/{c}/cmdline", "rb") as f:
                res[int(c)] = f.read().split(b"\0")[0].decode()
        except OSError:
            pass
    return res


class ScriptEndsWithHilod(unittest.TestCase):
    def test_x_server_dies_then_sigterm_to_hilod(self):
        with tempfile.TemporaryDirectory(prefix="hilo_emu_script_") as tmp:
            log = open(os.path.join(tmp, "out.txt"), "w")
            p = subprocess.Popen(["sh", os.path.join(ROOT, "scripts", "emulated-lab.sh"), "-b", BUILD, "-d", tmp],
                                 stdout=log, stderr=log, start_new_session=True)
            kids = {}
            try:
                deadline = time.monotonic() + 30
                while not os.path.exists(os.path.join(tmp, "ready.json")):
                    self.assertIsNone(p.poll(), open(os.path.join(tmp, "out.txt")).read())
                    self.assertLess(time.monotonic(), deadline, "hilod did not start")
                    time.sleep(0.1)
                kids = children(p.pid)
                by_name = {os.path.basename(v): k for k, v in kids.items()}
                self.assertEqual(set(by_name), {"Xvfb", "hilo-emulator", "hilod"}, kids)
                os.kill(by_name["Xvfb"], signal.SIGKILL)
                time.sleep(0.2)
                os.kill(by_name["hilod"], signal.SIGTERM)
                try:
                    rc = p.wait(15)
                except subprocess.TimeoutExpired:
                    self.fail("the script still waits 15 s after hilod was stopped: " + str(children(p.pid)))
                self.assertEqual(rc, 0)
                for k in kids:  # hilod, the emulator and the X server are all gone
                    self.assertFalse(os.path.exists(f"/proc/{k}") and open(f"/proc/{k}/stat").read().split()[2] != "Z",
                                     f"{kids[k]} ({k}) still runs")
            finally:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(10)
                for k in kids:
                    try:
                        os.kill(k, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                log.close()


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
