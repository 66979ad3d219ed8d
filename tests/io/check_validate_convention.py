#!/usr/bin/env python3
"""Checks that every options struct follows the one validation convention (docs/architecture.md).

Every validate() declared in a header returns std::string: "" when valid, else the violated rule, and
is [[nodiscard]], so a call that drops the rule does not compile silently. A validate() that returns
void (and throws), bool, or anything else, is the other convention coming back.
Usage: check_validate_convention.py ROOT      exit 1 and one line per violation
       check_validate_convention.py --self-test  proves the check finds each kind of violation
"""
import re
import sys

from tree_check import lines, main, scratch_tree

FOLDERS = ["io", "sim", "distill", "drivers", "calibration", "controller"]
# A declaration or inline definition of a member named validate: what precedes the name on its line.
DECL = re.compile(r"^\s*(?P<before>[^/(=]*?)\bvalidate\s*\([^)]*\)\s*const\b")
GOOD = re.compile(r"^\[\[nodiscard\]\]\s+std::string\s*$")


def violations(root):
    out = []
    for _, rel, n, line in lines(root, FOLDERS, (".hpp", ".h")):
        m = DECL.match(line)
        if not m:
            continue
        before = m.group("before").strip()
        if not GOOD.match(before):
            out.append(f"{rel}:{n}: validate() must be declared '[[nodiscard]] std::string "
                       f"validate(...) const' (\"\" when valid, else the rule), got '{before}'")
    return out


def self_test():
    with scratch_tree() as (d, put):
        put("sim/include/hilo/sim/a.hpp",
            '  [[nodiscard]] std::string validate(const std::string& path = "camera") const;  // rule\n'
            "  // validate() returns the rule\n"
            "  explicit Camera(Options o);  // options must validate()\n")
        put("distill/include/hilo/distill/b.hpp",
            "  [[nodiscard]] std::string validate() const {\n    return {};\n  }\n")
        put("drivers/src/c.cpp", "void Options::validate() const { throw 1; }\n")  # sources are not checked
        assert violations(d) == [], violations(d)
        put("distill/include/hilo/distill/c.hpp", "  void validate() const;  // throws\n")
        put("calibration/include/hilo/calibration/d.hpp", "  std::string validate() const;\n")
        put("controller/include/hilo/controller/e.hpp", "  bool validate(std::string* error) const;\n")
        v = violations(d)
        assert len(v) == 3, v
        assert any("c.hpp:1" in x and "'void'" in x for x in v), v
        assert any("d.hpp:1" in x for x in v), v
        assert any("e.hpp:1" in x and "'bool'" in x for x in v), v


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], violations, self_test, "every validate() returns its rule as a string",
                  lambda n: f"{n} validate() declaration(s) off the convention"))
