#!/usr/bin/env bash
# Results table of the distillation family AT CONVERGENCE (issue #12), 3 paired seeds.
#
#   scripts/distill_converged.sh <work-dir> [hilo-train binary]
#
# The convergence rule (train.early_stop, docs/distill.md "Results at convergence"): after every epoch
# the validation accuracy is compared with the best so far; training stops after PATIENCE epochs in a row
# without a gain above MIN_DELTA, or at CAP epochs (the cosine schedule runs over the cap), and the
# best epoch's parameters are kept. Every epoch also logs the test accuracy of its weights
# (train.log_test_acc, reported only), so one run gives the equal-epoch and equal-time comparisons.
#
# Environment: DATA (mnist, the default: the 7,000 / 1,000 / 2,000 split; or fashion-mnist: 55,000 /
# 5,000 / 10,000), TRAIN_LIMIT (0 = the whole training split), CAP (default 30), PATIENCE (5),
# MIN_DELTA (0), SEEDS ("1 2 3"), TEACHER_EPOCHS (10), NOISE (camera noise while training, false),
# AUGMENT (the students' train.augment as JSON, merged onto hilo-train's student defaults, which shift
# the inputs by ±2 px; the default '{"shift_px": 0, "hflip": false}' is none, the protocol of the tables
# documented so far),
# JOBS (parallel runs, 1), METHODS (the students to compare, "none kd gd shared ntkd ntkdkd"; none is
# always run: it chooses the regime and is the reference), TEACHERS (a work dir of an earlier run with
# teacher_s<seed>/ inside, e.g. the full table's: its teachers are linked instead of trained; they must
# be of the same DATA; teachers always train on the whole split, TRAIN_LIMIT limits students only).
# Stage 1: one teacher per seed. Stage 2: on the first seed, the training regime (learning rate, weight
# decay) is chosen on validation with method none (REGIME grid below); then each method's small grid
# runs in that regime (METHOD grid, starting from the Fashion-MNIST table's winners), and NTKD + KD
# combines the best NTKD and KD settings. Stage 3: each method's best setting with the other seeds.
# Stage 4: <work-dir>/results.md and results.json (scripts/distill_table.py): the table, paired
# differences to none, and the equal-epoch and equal-time comparisons. Finished runs (history.json
# present) are skipped, so re-running resumes.
set -euo pipefail
work=${1:?usage: distill_converged.sh <work-dir> [hilo-train]}
bin=${2:-build/distill/hilo-train}
here=$(cd "$(dirname "$0")" && pwd)
DATA=${DATA:-mnist}
TRAIN_LIMIT=${TRAIN_LIMIT:-0}
CAP=${CAP:-30}
PATIENCE=${PATIENCE:-5}
MIN_DELTA=${MIN_DELTA:-0}
SEEDS=${SEEDS:-"1 2 3"}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-10}
NOISE=${NOISE:-false}
AUGMENT=${AUGMENT:-'{"shift_px": 0, "hflip": false}'}
JOBS=${JOBS:-1}
METHODS=${METHODS:-"none kd gd shared ntkd ntkdkd"}
TEACHERS=${TEACHERS:-}
case " $METHODS " in *" none "*) ;; *) METHODS="none $METHODS" ;; esac
for m in $METHODS; do
  case "$m" in none|kd|gd|shared|ntkd|ntkdkd) ;; *) echo "METHODS: unknown method $m" >&2; exit 2 ;; esac
done
case " $METHODS " in *" ntkdkd "*)
  for m in ntkd kd; do
    case " $METHODS " in *" $m "*) ;;
      *) echo "METHODS: ntkdkd combines the best ntkd and kd settings, so it needs both" >&2; exit 2 ;; esac
  done ;;
esac
case "$DATA" in
  mnist) TEACHER_BATCH=64 ;;
  fashion-mnist) TEACHER_BATCH=128 ;;
  *) echo "DATA must be mnist or fashion-mnist, got $DATA" >&2; exit 2 ;;
esac
mkdir -p "$work"
export OMP_NUM_THREADS=1
first=$(echo $SEEDS | cut -d' ' -f1)

. "$here/distill_common.sh"

# ---- stage 1: teachers (linked from TEACHERS when given, else trained)
for s in $SEEDS; do
  if [ -n "$TEACHERS" ] && [ ! -e "$work/teacher_s$s" ]; then
    [ -f "$TEACHERS/teacher_s$s/history.json" ] || { echo "TEACHERS: no finished teacher_s$s in $TEACHERS" >&2; exit 2; }
    ln -s "$(cd "$TEACHERS/teacher_s$s" && pwd)" "$work/teacher_s$s"
  fi
done
for s in $SEEDS; do
  cat > "$work/teacher_s$s.json" <<JSON
{"command": "train-teacher", "data": {"name": "$DATA"}, "arch": {"channels": [16, 32], "hidden": 128},
 "train": {"epochs": $TEACHER_EPOCHS, "batch_size": $TEACHER_BATCH, "seed": $s, "optimizer": {"kind": "adam", "lr": 0.002}},
 "out_dir": "$work/teacher_s$s"}
JSON
  echo "train-teacher $work/teacher_s$s.json"
done | run_all

# ---- student configs: <name> <seed> <distill-json> <train-json (regime, without seed and stop rule)>
student_cfg() {
  python3 - "$work" "$1" "$2" "$3" "$4" "$DATA" "$TRAIN_LIMIT" "$NOISE" "$CAP" "$PATIENCE" "$MIN_DELTA" "$AUGMENT" <<'PY'
import json, sys
work, name, seed, distill, train, data, limit, noise, cap, patience, min_delta, augment = sys.argv[1:]
t = json.loads(train)
t.update({"epochs": int(cap), "seed": int(seed), "log_test_acc": True, "augment": json.loads(augment),
          "early_stop": {"patience": int(patience), "min_delta": float(min_delta)}})
cfg = {"command": "distill", "teacher": f"{work}/teacher_s{seed}/teacher.hilo",
       "data": {"name": data, "train_limit": int(limit)},
       "student": {"noise": {"enabled": noise == "true"}},
       "distill": json.loads(distill), "train": t, "out_dir": f"{work}/{name}_s{seed}"}
json.dump(cfg, open(f"{work}/{name}_s{seed}.json", "w"), indent=1)
PY
  echo "distill $work/$1_s$2.json"
}
section() {  # <config> <key>: that section of a config, as JSON
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$1" "$2"
}
best() { python3 "$here/distill_table.py" best "$work" "$first" "$1"; }

# ---- stage 2a: the training regime, chosen with method none (Adam, cosine over the cap, batch 64)
while IFS='|' read -r name train; do
  student_cfg "$name" "$first" '{"method": "none"}' "$train"
done <<'REGIME' | run_all
none_lr1e-2|{"optimizer": {"kind": "adam", "lr": 0.01}}
none_lr3e-3|{"optimizer": {"kind": "adam", "lr": 0.003}}
none_lr1e-2_wd1e-4|{"optimizer": {"kind": "adam", "lr": 0.01, "weight_decay": 0.0001}}
REGIME
regime=$(python3 - "$work/$(best none)_s$first.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["train"]
print(json.dumps({k: t[k] for k in ("optimizer", "batch_size", "schedule") if k in t}))
PY
)
echo "regime (best none on validation): $regime"

# ---- stage 2b: each method's grid in that regime (the methods of METHODS only)
while IFS='|' read -r name js; do
  case " $METHODS " in *" $(python3 "$here/distill_table.py" method "$name") "*) ;; *) continue ;; esac
  student_cfg "$name" "$first" "$js" "$regime"
done <<'GRID' | run_all
kd_T4_a05|{"method": "kd", "temperature": 4, "kd_alpha": 0.5}
kd_T4_a02|{"method": "kd", "temperature": 4, "kd_alpha": 0.2}
gd_l09|{"method": "gd", "temperature": 4, "gd_lambda": 0.9, "gd_input_noise": 0.1}
gd_l05|{"method": "gd", "temperature": 4, "gd_lambda": 0.5, "gd_input_noise": 0.1}
shared_w05_m1|{"method": "shared", "shared_weight": 0.5, "shared_feature_weight": 1.0}
shared_w1_m01|{"method": "shared", "shared_weight": 1.0, "shared_feature_weight": 0.1}
ntkd_align_backend_b10|{"method": "ntkd", "ntk_distance": "alignment", "ntk_param_set": "backend", "ntk_beta": 10.0, "ntk_subbatch": 32, "ntk_every": 2}
ntkd_cka_backend_b10|{"method": "ntkd", "ntk_distance": "cka", "ntk_param_set": "backend", "ntk_beta": 10.0, "ntk_subbatch": 32, "ntk_every": 2}
GRID
case " $METHODS " in *" ntkdkd "*)
  combo=$(python3 "$here/distill_table.py" combo "$work" "$first")
  student_cfg ntkdkd "$first" "$combo" "$regime" | run_all ;;
esac

# ---- stage 3: each method's best setting with the other seeds
for m in $METHODS; do
  b=$(best "$m")
  for s in $SEEDS; do
    [ "$s" = "$first" ] && continue
    student_cfg "$b" "$s" "$(section "$work/${b}_s$first.json" distill)" "$(section "$work/${b}_s$first.json" train)"
  done
done | run_all

# ---- stage 4: table
python3 "$here/distill_table.py" table "$work" "$SEEDS" "$METHODS"
