"""A capture's rate through the emulated lab against the device-limited rate, in the same run.

usage: bench_emulated_rate.py HILOD HILO_EMULATOR [--frames N] [--reps R] [--profile PROFILE.yaml]

Starts Xvfb with the two monitors, hilo-emulator and hilod on configs/emulated-lab.yaml (as
tests/drivers/test_emulated_lab.py does), then runs R captures of N Fashion-MNIST images with the content check on and R with it off (ABBA). Each capture
reports (stats.rate, docs/devices.md "The capture's rate") its frames per second and the device-limited
rate 1000 / (settle + exposure + readout) ms, the readout being the median time a grab took beyond the
exposure in that same capture. Prints both and their ratio per repetition and the median ratio; the
issue's acceptance is a ratio of at least 0.9. Exit status 0 whatever the ratio (a benchmark, not a test).
"""
import argparse
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hilod")
    ap.add_argument("emulator")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profile", default=os.path.join(ROOT, "configs", "profiles", "moderate.yaml"))
    a = ap.parse_args()
    sys.argv = [sys.argv[0], a.hilod, a.emulator, ROOT]  # the positions test_emulated_lab reads
    sys.path.insert(0, os.path.join(ROOT, "tests", "drivers"))
    import test_emulated_lab as lab_mod  # noqa: E402

    lab_mod.PROFILE = a.profile
    with tempfile.TemporaryDirectory(prefix="hilo_bench_rate_") as tmp:
        lab = lab_mod.Lab(tmp)
        old = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = lab.env["DISPLAY"]
        d = None
        try:
            d = lab_mod.Daemon(a.hilod, lab_mod.CONFIG, os.path.join(tmp, "data"), heartbeat_s=0.1,
                               env=dict(os.environ))
            c = lab_mod.Client(d.commands)
            ratios = {True: [], False: []}
            order = [True, False, False, True] * ((a.reps + 1) // 2)  # ABBA: the check on, then off
            print(f"capture of {a.frames} images through hilod on the emulated lab, {a.reps} repetitions "
                  f"with the content check and {a.reps} without, ABBA")
            for rep, check in enumerate(order[:2 * a.reps]):
                rec = c.capture(start=rep * a.frames, count=a.frames, split="train", wait=True, timeout_s=600,
                                content_check={"enabled": check})
                if rec["state"] != "done":
                    raise SystemExit(f"capture ended {rec['state']}: {rec.get('error')}")
                r = rec["stats"]["rate"]
                ratios[check].append(r["ratio"])
                print(f"  rep {rep} content check {'on ' if check else 'off'}: {r['frames_per_s']:.2f} frames/s, "
                      f"device-limited {r['device_limited_frames_per_s']:.2f} "
                      f"frames/s (settle {r['settle_ms']:.1f} + exposure {r['exposure_ms']:.1f} + readout "
                      f"{r['readout_ms']:.2f} ms), ratio {r['ratio']:.3f}, regrabs {rec['stats']['capture']['regrabs']}")
            on, off = statistics.median(ratios[True]), statistics.median(ratios[False])
            print(f"median ratio capture / device-limited: {on:.3f} with the content check, {off:.3f} without "
                  f"(acceptance >= 0.9); the check keeps {on / off:.3f} of the rate without it")
            c.close()
        finally:
            if d is not None:
                d.stop()
            lab.stop()
            if old is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = old


if __name__ == "__main__":
    main()
