#!/usr/bin/env bash
# Adaptive teaching in the shared-classifier mode against the frozen head (issue #14), 3 paired seeds on
# the MNIST digits (docs/distill.md, "Adaptive teaching in the shared-classifier mode").
#
#   scripts/shared_adapt_study.sh <work-dir> [hilo-train binary]
#
# Stage 1: teachers (channels [16, 32], hidden 128, 15 epochs, shifts ±2 px). Stage 2, seed 1: the
# students own (today's default: own head), frozen (shared head at test, head frozen) and the adaptation
# grid lr_scale × keep_weight (GRID); the grid point with the highest last-epoch validation accuracy wins
# (the first in GRID order on a tie). Stage 3, seeds 2 and 3: own, frozen, the winner and lr_scale 1 /
# keep_weight 1, and KD (T 4, α 0.9) as the reference of "Shifted inputs". Students: 30 epochs Adam 1e-2
# cosine, shifts ±2 px, log_test_acc. Finished runs (history.json present) are skipped, so re-running
# resumes. Environment: JOBS (parallel runs, 2; one thread each), GRID ("1:1 0.1:1 1:0.1 0.1:0.1").
# Ends with the tables (scripts/shared_adapt_table.py).
set -euo pipefail
work=$(mkdir -p "${1:?usage: shared_adapt_study.sh <work-dir> [hilo-train]}" && cd "$1" && pwd)
bin=$(realpath "${2:-build/distill/hilo-train}")
here=$(cd "$(dirname "$0")" && pwd)
JOBS=${JOBS:-2}
GRID=${GRID:-"1:1 0.1:1 1:0.1 0.1:0.1"}
shared='"method":"shared","shared_weight":1,"shared_feature_weight":0.1'

teacher() {  # seed
  cat > "$work/teacher_s$1.json" <<J
{"command":"train-teacher","data":{"name":"mnist"},"arch":{"channels":[16,32],"hidden":128},
 "train":{"epochs":15,"batch_size":64,"seed":$1,"optimizer":{"kind":"adam","lr":0.002},"augment":{"shift_px":2}},
 "out_dir":"$work/teacher_s$1"}
J
  echo "train-teacher $work/teacher_s$1.json"
}
student() {  # name seed distill-json
  cat > "$work/$1_s$2.json" <<J
{"command":"distill","data":{"name":"mnist"},"teacher":"$work/teacher_s$2/teacher.hilo","distill":{$3},
 "train":{"epochs":30,"seed":$2,"optimizer":{"kind":"adam","lr":0.01},"augment":{"shift_px":2},"log_test_acc":true},
 "out_dir":"$work/$1_s$2"}
J
  echo "distill $work/$1_s$2.json"
}
adapt() { echo "$shared,\"shared_test_head\":\"shared\",\"shared_adapt\":{\"enabled\":true,\"lr_scale\":$1,\"keep_weight\":$2}"; }
run_all() {  # lines "<command> <config>" on stdin; skips finished runs
  while read -r cmd cfg; do [ -f "${cfg%.json}/history.json" ] || echo "$cmd $cfg"; done |
    xargs -r -P "$JOBS" -L 1 sh -c 'nice -n 5 "$0" "$1" "$2" > "${2%.json}.log" 2>&1' "$bin"
}
seed_runs() {  # seed grid-points...
  local s=$1; shift
  student own "$s" "$shared"
  student frozen "$s" "$shared,\"shared_test_head\":\"shared\""
  student kd "$s" '"method":"kd","temperature":4,"kd_alpha":0.9'
  for g in "$@"; do student "adapt_l${g%:*}_k${g#*:}" "$s" "$(adapt "${g%:*}" "${g#*:}")"; done
}

for s in 1 2 3; do teacher $s; done | run_all
seed_runs 1 $GRID | run_all
best=$(python3 - "$work" $GRID <<'P'
import json, sys
work, grid = sys.argv[1], sys.argv[2:]
val = lambda g: json.load(open(f"{work}/adapt_l{g.split(':')[0]}_k{g.split(':')[1]}_s1/history.json"))["epochs"][-1]["val_acc"]
print(max(grid, key=lambda g: (val(g), -grid.index(g))))
P
)
echo "seed 1: lr_scale:keep_weight $best has the highest last-epoch validation accuracy"
for s in 2 3; do seed_runs $s $(printf '%s\n' "$best" 1:1 | sort -u); done | run_all
python3 "$here/shared_adapt_table.py" "$work" "$best"
