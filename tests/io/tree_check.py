"""What the source-tree checks of tests/io share (check_layers.py, check_validate_convention.py).

lines(root, folders, suffixes): every line of every file under root/<folder> with one of the suffixes,
  as (folder, path relative to root, line number, text), folders in the given order, files sorted.
scratch_tree(): a temporary tree for a self-test; put(rel, text) writes a file in it.
main(argv, violations, self_test, clean, summary): the command line of a check:
  CHECK ROOT         prints each violation and summary(count), exit 1; none: prints `clean`, exit 0
  CHECK --self-test  runs self_test() (which asserts) and prints "1 passed, 0 failed"
"""
import contextlib
import os
import tempfile


def lines(root, folders, suffixes):
    for top in folders:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if not f.endswith(tuple(suffixes)):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, root)
                with open(path, errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        yield top, rel, n, line


@contextlib.contextmanager
def scratch_tree():
    with tempfile.TemporaryDirectory() as d:
        def put(rel, text):
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as fh:
                fh.write(text)
        yield d, put


def main(argv, violations, self_test, clean, summary):
    if argv == ["--self-test"]:
        self_test()
        print("1 passed, 0 failed")
        return 0
    if len(argv) != 1:
        print("usage: CHECK ROOT | CHECK --self-test")
        return 2
    v = violations(argv[0])
    for x in v:
        print(x)
    print(summary(len(v)) if v else clean)
    return 1 if v else 0
