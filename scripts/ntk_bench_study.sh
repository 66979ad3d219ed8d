#!/usr/bin/env bash
# Where NTK knowledge pays on the bench (issue #12): optical students trained with none, KD and NTKD in
# the pipeline's own setting (its defaults: camera noise, 12 annealed epochs of Adam 1e-2; one teacher per
# seed, shared by the three students of that seed, so the methods are paired), each deployed to the
# simulated bench's mild, moderate and severe as-built profiles. Two readings per run:
#   * robustness of the deployed element: the uncompensated bench accuracy against the deployed design's
#     simulated accuracy (the misalignment, aberration and kernel error of the profile, after calibration);
#   * compensation from 2 % of the training set: the task-loss and NTKD re-fits of the backend on 140
#     measured images (before the guard).
# The twin modes and the element re-optimisation are off (they do not depend on how the student trained).
#
#   scripts/ntk_bench_study.sh <work-dir> [hilo-pipeline binary]
#
# Environment: SEEDS ("1 2 3"), JOBS (parallel runs after each seed's teacher, 1), CONFIG (the bench,
# configs/sim.yaml). Resumable: a run with report.json is skipped. Writes <work-dir>/results.md and
# results.json (scripts/ntk_bench_table.py).
set -euo pipefail
work=${1:?usage: ntk_bench_study.sh <work-dir> [hilo-pipeline]}
bin=${2:-build/controller/hilo-pipeline}
here=$(cd "$(dirname "$0")" && pwd)
SEEDS=${SEEDS:-"1 2 3"}
JOBS=${JOBS:-1}
CONFIG=${CONFIG:-configs/sim.yaml}
mkdir -p "$work"
export OMP_NUM_THREADS=1

job() {  # <method> <seed>: the run's job file
  local distill
  case "$1" in
    none) distill='{method: none}' ;;
    kd) distill='{method: kd, temperature: 4, kd_alpha: 0.5}' ;;
    ntkd) distill='{method: ntkd, ntk_distance: alignment, ntk_param_set: all, ntk_beta: 10, ntk_subbatch: 32, ntk_every: 2}' ;;
  esac
  cat > "$work/$1_s$2.yaml" <<YAML
seed: $2
student: {distill: $distill}
measure: {fractions: [0.02]}
bench: {kernels: {enabled: false}, reoptimise_element: {enabled: false}}
YAML
  echo "$work/$1_s$2.yaml"
}
run() {  # <method> <seed>
  local out="$work/$1_s$2"
  [ -f "$out/report.json" ] && return 0
  "$bin" --config "$CONFIG" --job "$(job "$1" "$2")" --out "$out" > "$out.log" 2>&1 || { echo "FAILED: $out (see $out.log)" >&2; return 1; }
}
export -f run job
export work bin CONFIG
for s in $SEEDS; do
  run none "$s"   # trains the seed's teacher
  for m in kd ntkd; do
    if [ ! -e "$work/${m}_s$s/teacher" ]; then mkdir -p "$work/${m}_s$s" && cp -r "$work/none_s$s/teacher" "$work/${m}_s$s/"; fi
  done
done
for s in $SEEDS; do for m in kd ntkd; do echo "$m $s"; done; done | xargs -P "$JOBS" -L 1 bash -c 'run "$0" "$1"'
python3 "$here/ntk_bench_table.py" "$work" $SEEDS
