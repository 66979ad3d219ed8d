#!/usr/bin/env python3
"""Checks the floors of DESIGN.md section 2 over every C++ file of the tree (apps included).

io <- sim <- {distill, drivers} <- calibration <- controller: a file may include hilo headers of its
own folder and of folders below it, never of a folder at or above its own floor; and calibration
includes none of the simulator's ground truth (hilo/sim/as_built.hpp).
Usage: check_layers.py ROOT      exit 1 and one line per violation when the tree breaks a rule
       check_layers.py --self-test   proves the check finds both kinds of violation
"""
import os
import re
import sys
import tempfile

RANK = {"io": 0, "sim": 1, "distill": 2, "drivers": 2, "calibration": 3, "controller": 4}
GROUND_TRUTH = {"calibration": ["hilo/sim/as_built.hpp"]}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"](hilo/([a-z_]+)/[^>"]+)[>"]')


def violations(root):
    out = []
    for top in RANK:
        base = os.path.join(root, top)
        for dirpath, _, files in os.walk(base):
            for f in sorted(files):
                if not f.endswith((".hpp", ".cpp", ".h", ".cc")):
                    continue
                path = os.path.join(dirpath, f)
                with open(path, errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        header, floor = m.group(1), m.group(2)
                        rel = os.path.relpath(path, root)
                        if floor in RANK and floor != top and RANK[floor] >= RANK[top]:
                            out.append(f"{rel}:{n}: {top}/ includes {header} ({floor}/ is not below {top}/)")
                        if header in GROUND_TRUTH.get(top, []):
                            out.append(f"{rel}:{n}: {top}/ includes the simulator's ground truth {header}")
    return out


def self_test():
    with tempfile.TemporaryDirectory() as d:
        def put(rel, text):
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as fh:
                fh.write(text)
        put("sim/src/a.cpp", '#include "hilo/io/file_io.hpp"\n#include "hilo/sim/fft.hpp"\n')
        put("calibration/src/b.cpp", '#include "hilo/distill/student.hpp"\n')
        assert violations(d) == [], violations(d)
        put("distill/apps/c.cpp", '#include "hilo/controller/pipeline.hpp"\n')
        put("drivers/src/d.cpp", '#include <hilo/distill/data.hpp>\n')
        put("calibration/include/hilo/calibration/e.hpp", '  #include "hilo/sim/as_built.hpp"\n')
        v = violations(d)
        assert len(v) == 3, v
        assert any("distill/apps/c.cpp:1" in x for x in v), v
        assert any("drivers/src/d.cpp:1" in x for x in v), v
        assert any("ground truth" in x for x in v), v
    print("1 passed, 0 failed")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    v = violations(sys.argv[1])
    for x in v:
        print(x)
    print(f"{len(v)} include(s) against the floors" if v else "every include points down")
    return 1 if v else 0


if __name__ == "__main__":
    sys.exit(main())
