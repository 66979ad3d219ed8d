#!/usr/bin/env bash
# The README's main command: set up a fresh machine, build, and run the main job in simulator mode —
# the hardware-in-the-loop pipeline (teacher → student → deploy → calibrate → measure a fraction
# of the training set → compensate → evaluate, on the mild, moderate and severe as-built profiles),
# through the daemon: hilod on the simulated bench (virtual clock), driven by `hiloctl pipeline`.
# Output: ${HILO_OUT:-runs/main}: report.json, accuracy_table.png and the run's figures (a link to the
# daemon's run directory under data/). Extra arguments go to `hiloctl pipeline` (e.g. --job my.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
out=${HILO_OUT:-runs/main}
mkdir -p "$out"
out=$(cd "$out" && pwd)
ready="$out/hilod.ready.json"
rm -f "$ready"
./build/controller/hilod --config configs/sim.yaml --virtual-time --data-dir "$out/data" \
  --command-endpoint "tcp://127.0.0.1:*" --event-endpoint "tcp://127.0.0.1:*" --ready-file "$ready" \
  2> "$out/hilod.log" &
hilod_pid=$!
trap 'kill -TERM $hilod_pid 2>/dev/null || true; wait $hilod_pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -f "$ready" ] && break; kill -0 $hilod_pid 2>/dev/null || { cat "$out/hilod.log"; exit 1; }; sleep 0.1; done
endpoints=$(/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["command_endpoint"], r["event_endpoint"])' "$ready")
cmd_ep=${endpoints% *}; ev_ep=${endpoints#* }
status=0
# No arguments: the main job's settings (configs/main-job.yaml: the defaults on two threads).
[ $# -eq 0 ] && set -- --job configs/main-job.yaml
./build/controller/hiloctl --endpoint "$cmd_ep" --events "$ev_ep" --timeout-ms 60000 pipeline "$@" > "$out/job.json" || status=$?
run_id=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["job"]["run_id"])' "$out/job.json")
ln -sfn "data/$run_id" "$out/run"
for f in report.json accuracy_table.png learning_curves.png; do
  [ -e "$out/run/$f" ] && ln -sfn "run/$f" "$out/$f"
done
./build/controller/hiloctl --endpoint "$cmd_ep" shutdown > /dev/null || true
wait $hilod_pid || true
trap - EXIT
[ -f "$out/report.json" ] && /usr/bin/python3 scripts/pipeline_table.py "$out/report.json"
echo "main: results in $out (report.json, accuracy_table.png, run/ with every stage's figures)"
exit $status
