#!/bin/sh
# The emulated lab in one command: Xvfb with the two XRandR monitors of configs/emulated-lab.yaml,
# hilo-emulator serving the GigE Vision camera at 127.0.0.1, and hilod on the same config in the
# foreground. Ctrl-C (or SIGTERM) stops all three, hilod first (each runs in its own session, so the
# terminal's Ctrl-C reaches only this script, which stops them in order). docs/devices.md, "Rehearsing with the emulator".
#
# usage: scripts/emulated-lab.sh [-b BUILD_DIR] [-c CONFIG] [-p PROFILE] [-d DATA_DIR] [--pipeline [--quick | -j JOB]] [-- EMULATOR_ARGS...]
#   BUILD_DIR  where hilod and hilo-emulator were built (default: build)
#   CONFIG     bench file with the lab's wiring (default: configs/emulated-lab.yaml)
#   PROFILE    as-built profile the emulator renders with (default: configs/profiles/moderate.yaml)
#   DATA_DIR   hilod's data directory (default: a new folder under /tmp); the emulator's frame log is
#              DATA_DIR/emulator-frames.jsonl
#   EMULATOR_ARGS  e.g. --slow-slm-fraction 0.05 --dropped-frame-fraction 0.02 (hilo-emulator --help)
#   --pipeline     run the pipeline job through hilod (hiloctl pipeline, full settings), print its
#                  accuracy table, stop everything and exit with hiloctl's status
#   --quick        with --pipeline: the quick settings of configs/pipeline-quick.yaml (a few minutes)
#   JOB            with --pipeline: the pipeline settings of this YAML or JSON file instead
# Without --pipeline hilod stays in the foreground; its endpoints are in DATA_DIR/ready.json; drive it
# with hiloctl or the Python client.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
config=$root/configs/emulated-lab.yaml
profile=$root/configs/profiles/moderate.yaml
data=
pipeline=
job=
for a in "$@"; do  # the two long flags, taken out before getopts sees the short ones
  shift
  case $a in
    --pipeline) pipeline=1 ;;
    --quick) job=$root/configs/pipeline-quick.yaml ;;
    *) set -- "$@" "$a" ;;
  esac
done
while getopts b:c:p:d:j: opt; do
  case $opt in
    b) build=$OPTARG ;;
    c) config=$OPTARG ;;
    p) profile=$OPTARG ;;
    d) data=$OPTARG ;;
    j) job=$(cd "$(dirname "$OPTARG")" && pwd)/$(basename "$OPTARG") ;;
    *) sed -n '6,20p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
[ -n "$data" ] || data=$(mktemp -d /tmp/hilo-emulated-lab.XXXXXX)
mkdir -p "$data"

pids=
cleanup() {  # hilod first (it closes its devices), then the emulator, then the X server
  for p in $pids; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fifo=$data/.xvfb-display
rm -f "$fifo" && mkfifo "$fifo"
setsid Xvfb -displayfd 3 -screen 0 192x112x24 -nolisten tcp -noreset 3>"$fifo" >/dev/null 2>&1 &
pids="$!"
read -r number <"$fifo"
rm -f "$fifo"
DISPLAY=:$number
export DISPLAY
xrandr --setmonitor HILO-INPUT 112/112x112/112+0+0 none     # monitor 0: the input SLM
xrandr --setmonitor HILO-ELEMENT 64/64x64/64+128+0 none     # monitor 1: the element SLM
echo "emulated lab on DISPLAY=$DISPLAY, data in $data" >&2

setsid "$build/drivers/hilo-emulator" --bench "$config" --profile "$profile" --log "$data/emulator-frames.jsonl" "$@" &
pids="$! $pids"
sleep 1
setsid "$build/controller/hilod" --config "$config" --data-dir "$data" --ready-file "$data/ready.json" &
hilod=$!
pids="$hilod $pids"
# The lab ends with hilod (Ctrl-C, SIGTERM, or hilod exiting on its own): waiting for every child would
# hang on an emulator that outlived its X server, since it notices only at its next frame.
[ -n "$pipeline" ] || { wait "$hilod"; exit; }

i=0
until [ -s "$data/ready.json" ]; do
  i=$((i + 1)); [ $i -le 300 ] || { echo "hilod did not start" >&2; exit 1; }
  sleep 0.1
done
endpoints=$(/usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["command_endpoint"], r["event_endpoint"])' "$data/ready.json")
set -- $endpoints
rc=0
"$build/controller/hiloctl" --endpoint "$1" --events "$2" pipeline ${job:+--job "$job"} >"$data/pipeline-job.json" || rc=$?
run=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["job"].get("run_id", ""))' "$data/pipeline-job.json" 2>/dev/null || true)
if [ -n "$run" ] && [ -f "$data/$run/report.json" ]; then
  /usr/bin/python3 "$root/scripts/pipeline_table.py" "$data/$run/report.json"
  echo "report: $data/$run/report.json" >&2
fi
exit $rc
