#!/usr/bin/env python3
"""Checks the floors of DESIGN.md section 2 over every C++ file of the tree (apps included).

io <- sim <- {distill, drivers} <- calibration <- controller: a file may include hilo headers of its
own folder and of folders below it, never of a folder at or above its own floor; and calibration
includes none of the simulator's ground truth (hilo/sim/as_built.hpp).
Usage: check_layers.py ROOT      exit 1 and one line per violation when the tree breaks a rule
       check_layers.py --self-test   proves the check finds both kinds of violation
"""
import re
import sys

from tree_check import lines, main, scratch_tree

RANK = {"io": 0, "sim": 1, "distill": 2, "drivers": 2, "calibration": 3, "controller": 4}
GROUND_TRUTH = {"calibration": ["hilo/sim/as_built.hpp"]}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"](hilo/([a-z_]+)/[^>"]+)[>"]')


def violations(root):
    out = []
    for top, rel, n, line in lines(root, RANK, (".hpp", ".cpp", ".h", ".cc")):
        m = INCLUDE.match(line)
        if not m:
            continue
        header, floor = m.group(1), m.group(2)
        if floor in RANK and floor != top and RANK[floor] >= RANK[top]:
            out.append(f"{rel}:{n}: {top}/ includes {header} ({floor}/ is not below {top}/)")
        if header in GROUND_TRUTH.get(top, []):
            out.append(f"{rel}:{n}: {top}/ includes the simulator's ground truth {header}")
    return out


def self_test():
    with scratch_tree() as (d, put):
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], violations, self_test, "every include points down",
                  lambda n: f"{n} include(s) against the floors"))
