#!/usr/bin/env bash
# Results table for the distillation family on Fashion-MNIST (3 seeds, mean ± std).
#
#   scripts/distill_results.sh <work-dir> [hilo-train binary]
#
# Environment: JOBS (parallel runs, default 2), TRAIN_LIMIT (training images, default 8000),
# EPOCHS (student epochs, default 3), TEACHER_EPOCHS (default 10), SEEDS (default "1 2 3"),
# GRID (built-in tuning grid: "wide", the default, or "focused": each method's winner of the earlier
# passes in docs/distill.md plus KD α = 0.2, NTKD variants of distance, parameter set, β and a cached
# teacher NTK, and one diagnostic run; used for the 30,000-image table there), GRID_FROM (a finished work dir: tune only
# among its best setting per method plus the settings in EXTRA_GRID, lines "name|distill-json"; used to
# re-run the winners with a larger budget; overrides GRID).
# Stage 1 trains one teacher per seed (full training set). Stage 2 tunes each student method on the
# validation split with the first seed (grids in the `grid` function below). Stage 3 re-runs each
# method's best setting (highest validation accuracy) with the other seeds. Stage 4 writes
# <work-dir>/results.md and results.json via scripts/distill_table.py: mean ± std per method and the
# paired difference to "none" per seed. Runs named diag_* are diagnostics (never selected; e.g. NTKD
# with β = 1e-9 to log the NTK distance of an undistilled student). Runs already finished (history.json
# present) are skipped, so the script can be re-run to resume; teacher_s<seed>/history.json present
# skips that teacher.
set -euo pipefail
work=${1:?usage: distill_results.sh <work-dir> [hilo-train]}
bin=${2:-build/distill/hilo-train}
here=$(cd "$(dirname "$0")" && pwd)
JOBS=${JOBS:-2}
TRAIN_LIMIT=${TRAIN_LIMIT:-8000}
EPOCHS=${EPOCHS:-3}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-10}
SEEDS=${SEEDS:-"1 2 3"}
mkdir -p "$work"
export OMP_NUM_THREADS=1

. "$here/distill_common.sh"

# ---- stage 1: teachers
for s in $SEEDS; do
  cat > "$work/teacher_s$s.json" <<JSON
{"command": "train-teacher", "data": {"name": "fashion-mnist"}, "arch": {"channels": [16, 32], "hidden": 128},
 "train": {"epochs": $TEACHER_EPOCHS, "batch_size": 128, "seed": $s, "optimizer": {"kind": "adam", "lr": 0.002}},
 "out_dir": "$work/teacher_s$s"}
JSON
done
for s in $SEEDS; do echo "train-teacher $work/teacher_s$s.json"; done | run_all

# ---- student configs
student_cfg() {  # <name> <seed> <distill-json>
  cat > "$work/$1_s$2.json" <<JSON
{"command": "distill", "teacher": "$work/teacher_s$2/teacher.hilo",
 "data": {"name": "fashion-mnist", "train_limit": $TRAIN_LIMIT},
 "student": {"kernels": 8, "kernel_size": 7, "signing": "pairs", "pool": 4, "hidden": 256,
             "noise": {"enabled": true, "photons_per_unit": 200, "read_noise": 0.02}},
 "distill": $3,
 "train": {"epochs": $EPOCHS, "batch_size": 64, "seed": $2, "optimizer": {"kind": "adam", "lr": 0.003}},
 "out_dir": "$work/$1_s$2"}
JSON
  echo "distill $work/$1_s$2.json"
}

grid() {  # name|distill-json, one per line
  if [ -n "${GRID_FROM:-}" ]; then
    for m in none kd gd shared ntkd; do
      b=$(python3 "$here/distill_table.py" best "$GRID_FROM" "$(echo $SEEDS | cut -d' ' -f1)" "$m")
      echo "$b|$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["distill"]))' "$GRID_FROM/${b}_s$(echo $SEEDS | cut -d' ' -f1).json")"
    done
    [ -n "${EXTRA_GRID:-}" ] && printf '%s\n' "$EXTRA_GRID"
    return 0
  fi
  if [ "${GRID:-wide}" = focused ]; then
    cat <<'GRID'
none|{"method": "none"}
kd_T4_a05|{"method": "kd", "temperature": 4, "kd_alpha": 0.5}
gd_l09|{"method": "gd", "temperature": 4, "gd_lambda": 0.9, "gd_input_noise": 0.1}
shared_w05_m1|{"method": "shared", "shared_weight": 0.5, "shared_feature_weight": 1.0}
ntkd_align_all_b10|{"method": "ntkd", "ntk_distance": "alignment", "ntk_param_set": "all", "ntk_beta": 10.0, "ntk_subbatch": 32, "ntk_every": 2}
kd_T4_a02|{"method": "kd", "temperature": 4, "kd_alpha": 0.2}
ntkd_align_all_b30|{"method": "ntkd", "ntk_distance": "alignment", "ntk_param_set": "all", "ntk_beta": 30.0, "ntk_subbatch": 32, "ntk_every": 2}
ntkd_trace_all_b10|{"method": "ntkd", "ntk_distance": "trace_mse", "ntk_param_set": "all", "ntk_beta": 10.0, "ntk_subbatch": 32, "ntk_every": 2}
ntkd_align_optical_b10|{"method": "ntkd", "ntk_distance": "alignment", "ntk_param_set": "optical", "ntk_beta": 10.0, "ntk_subbatch": 32, "ntk_every": 2}
ntkd_align_backend_b10|{"method": "ntkd", "ntk_distance": "alignment", "ntk_param_set": "backend", "ntk_beta": 10.0, "ntk_subbatch": 32, "ntk_every": 2}
ntkd_align_all_b10_c64|{"method": "ntkd", "ntk_distance": "alignment", "ntk_param_set": "all", "ntk_beta": 10.0, "ntk_subbatch": 32, "ntk_every": 2, "ntk_cache_batches": 64}
diag_align_b0|{"method": "ntkd", "ntk_distance": "alignment", "ntk_param_set": "all", "ntk_beta": 1e-9, "ntk_subbatch": 32, "ntk_every": 8}
GRID
    return 0
  fi
  [ "${GRID:-wide}" = wide ] || { echo "GRID must be wide or focused, got ${GRID}" >&2; exit 2; }
  cat <<'GRID'
none|{"method": "none"}
kd_T4_a05|{"method": "kd", "temperature": 4, "kd_alpha": 0.5}
kd_T10_a05|{"method": "kd", "temperature": 10, "kd_alpha": 0.5}
kd_T4_a09|{"method": "kd", "temperature": 4, "kd_alpha": 0.9}
gd_l05|{"method": "gd", "temperature": 4, "gd_lambda": 0.5, "gd_input_noise": 0.1}
gd_l09|{"method": "gd", "temperature": 4, "gd_lambda": 0.9, "gd_input_noise": 0.1}
shared_w1_m01|{"method": "shared", "shared_weight": 1.0, "shared_feature_weight": 0.1}
shared_w05_m1|{"method": "shared", "shared_weight": 0.5, "shared_feature_weight": 1.0}
ntkd_align_all|{"method": "ntkd", "ntk_distance": "alignment", "ntk_param_set": "all", "ntk_beta": 1.0, "ntk_subbatch": 32, "ntk_every": 2}
ntkd_align_backend|{"method": "ntkd", "ntk_distance": "alignment", "ntk_param_set": "backend", "ntk_beta": 1.0, "ntk_subbatch": 32, "ntk_every": 2}
ntkd_trace_all|{"method": "ntkd", "ntk_distance": "trace_mse", "ntk_param_set": "all", "ntk_beta": 1.0, "ntk_subbatch": 32, "ntk_every": 2}
ntkd_trace_optical|{"method": "ntkd", "ntk_distance": "trace_mse", "ntk_param_set": "optical", "ntk_beta": 1.0, "ntk_subbatch": 32, "ntk_every": 2}
ntkd_mse_all|{"method": "ntkd", "ntk_distance": "mse", "ntk_param_set": "all", "ntk_beta": 1e-4, "ntk_subbatch": 32, "ntk_every": 2}
ntkd_align_all_b01|{"method": "ntkd", "ntk_distance": "alignment", "ntk_param_set": "all", "ntk_beta": 0.1, "ntk_subbatch": 32, "ntk_every": 2}
GRID
}

# ---- stage 2: tuning on validation (first seed)
first=$(echo $SEEDS | cut -d' ' -f1)
grid | while IFS='|' read -r name js; do student_cfg "$name" "$first" "$js"; done | run_all

# NTKD + KD: the best NTKD setting with the best KD setting (by validation accuracy).
best() { python3 "$here/distill_table.py" best "$work" "$first" "$1"; }
combo=$(python3 "$here/distill_table.py" combo "$work" "$first")
student_cfg ntkdkd "$first" "$combo" | run_all

# ---- stage 3: best setting of each method with the remaining seeds
for m in none kd gd shared ntkd ntkdkd; do
  b=$(best "$m")
  js=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["distill"]))' "$work/${b}_s$first.json")
  for s in $SEEDS; do
    [ "$s" = "$first" ] && continue
    student_cfg "$b" "$s" "$js"
  done
done | run_all

# ---- stage 4: table
python3 "$here/distill_table.py" table "$work" "$SEEDS"
