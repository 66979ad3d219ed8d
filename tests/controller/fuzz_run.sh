#!/bin/sh
# Runs the protocol fuzzer for a bounded time: fuzz_run.sh FUZZER SEED_CORPUS WORK_DIR SECONDS
# New inputs go to WORK_DIR/corpus (the checked-in seeds stay untouched); a crashing input is saved
# under WORK_DIR/artifacts/ and fails the test. Add it to the seed corpus once fixed.
set -eu
fuzzer="$1" seeds="$2" work="$3" seconds="$4"
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
exec "$fuzzer" "$work/corpus" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=8192 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/"
