#!/bin/sh
# The emulated lab in one command: Xvfb with the two XRandR monitors of configs/emulated-lab.yaml,
# hilo-emulator serving the GigE Vision camera at 127.0.0.1, and hilod on the same config in the
# foreground. Ctrl-C (or SIGTERM) stops all three, hilod first (each runs in its own session, so the
# terminal's Ctrl-C reaches only this script, which stops them in order). docs/devices.md, "Rehearsing with the emulator".
#
# usage: scripts/emulated-lab.sh [-b BUILD_DIR] [-c CONFIG] [-p PROFILE] [-d DATA_DIR] [-- EMULATOR_ARGS...]
#   BUILD_DIR  where hilod and hilo-emulator were built (default: build)
#   CONFIG     bench file with the lab's wiring (default: configs/emulated-lab.yaml)
#   PROFILE    as-built profile the emulator renders with (default: configs/profiles/moderate.yaml)
#   DATA_DIR   hilod's data directory (default: a new folder under /tmp); the emulator's frame log is
#              DATA_DIR/emulator-frames.jsonl
#   EMULATOR_ARGS  e.g. --slow-slm-fraction 0.05 --dropped-frame-fraction 0.02 (hilo-emulator --help)
# hilod prints its endpoints in DATA_DIR/ready.json; drive it with hiloctl or the Python client.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
config=$root/configs/emulated-lab.yaml
profile=$root/configs/profiles/moderate.yaml
data=
while getopts b:c:p:d: opt; do
  case $opt in
    b) build=$OPTARG ;;
    c) config=$OPTARG ;;
    p) profile=$OPTARG ;;
    d) data=$OPTARG ;;
    *) sed -n '6,14p' "$0"; exit 2 ;;
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
pids="$! $pids"
wait
