#!/usr/bin/env bash
# The README's main command: set up a fresh machine, build, and run the main job in simulator mode.
# Output goes to ${HILO_OUT:-runs/main} (JSON + PNG figures).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
out=${HILO_OUT:-runs/main}
mkdir -p "$out"
./build/sim/hilo-sim demo --out "$out" "$@"
echo "main: results in $out"
