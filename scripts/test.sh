#!/usr/bin/env bash
# The README's test command: set up a fresh machine, build, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --preset release "$@"
