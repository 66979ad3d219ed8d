#!/bin/sh
# Installs the Python client (scripts/python) into a fresh virtual environment without network and runs
# its own tests there against a real hilod.
# usage: test_python_package.sh VENV_DIR REPO_ROOT HILOD
set -eu
venv=$1 root=$2 hilod=$3
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --no-index --no-build-isolation --quiet "$root/scripts/python"
cd "$venv"  # not the source tree: the import must come from the installed package
HILOD=$hilod HILO_CONFIG=$root/tests/controller/sim_fast.yaml HILO_EXPECT_INSTALLED=1 \
  "$venv/bin/python" -m unittest discover -s "$root/scripts/python/tests" -t "$root/scripts/python/tests" -v
