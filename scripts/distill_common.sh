# shellcheck shell=bash
# Shared by the results-table scripts (sourced; needs $bin, the hilo-train binary, and $JOBS).
# run_one <command> <config>: runs one hilo-train job into its out_dir, logging to <out_dir>.log; a job
# whose history.json exists is skipped (what makes the scripts resumable).
run_one() {
  local dir; dir=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["out_dir"])' "$2")
  [ -f "$dir/history.json" ] && return 0
  "$bin" "$1" "$2" > "$dir.log" 2>&1 || echo "FAILED: $2 (see $dir.log)" >&2
}
export -f run_one
export bin
# run_all: the "<command> <config>" lines of stdin, JOBS at a time.
run_all() { xargs -P "$JOBS" -L 1 bash -c 'run_one "$0" "$1"'; }
