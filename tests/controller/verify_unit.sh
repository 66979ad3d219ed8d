#!/bin/sh
# usage: verify_unit.sh UNIT_FILE HILOD
# `systemd-analyze verify` on the unit with ExecStart's binary replaced by the built hilod. verify exits 0
# even for unknown keys and unparsable values (it only warns), so any output at all is a failure. A copy
# with an unknown key must produce output, which proves the check can fail. Exit 77 (skip) only when
# systemd-analyze is absent.
set -u
unit=$1 hilod=$2
command -v systemd-analyze >/dev/null 2>&1 || { echo "SKIPPED: systemd-analyze not found (Debian: systemd)"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/local/bin/hilod#$hilod#" "$unit" > "$tmp/hilod.service"
grep -q "^ExecStart=$hilod " "$tmp/hilod.service" || { echo "FAIL: ExecStart does not start /usr/local/bin/hilod"; exit 1; }
out=$(systemd-analyze verify --man=no "$tmp/hilod.service" 2>&1); rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
  echo "FAIL: systemd-analyze verify (exit $rc):"; echo "$out"; exit 1
fi
sed 's/^Restart=on-failure$/Restart=on-failure\nRestartEverything=yes/' "$tmp/hilod.service" > "$tmp/broken.service"
bad=$(systemd-analyze verify --man=no "$tmp/broken.service" 2>&1)
case $bad in *RestartEverything*) ;; *) echo "FAIL: verify did not report an unknown key: $bad"; exit 1 ;; esac
echo "OK: systemd-analyze verify accepts $(basename "$unit")"
