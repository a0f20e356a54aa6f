#!/usr/bin/env bash
# A/B of two plcvault binaries on the same data (run by hand, not in CI): first and second
# `collect --all` of one files device, alternating between the binaries, three rounds, so
# that a slower machine day is not taken for a regression.
#
#   bash tests/bench/ab.sh OLD_BINARY NEW_BINARY DATA_DIR
#
# DATA_DIR: e.g. the pristine copy `tests/bench/run.sh` leaves in /tmp/plcvault-bench/pristine.
set -euo pipefail
old=${1:?old binary}; new=${2:?new binary}; data=${3:?data folder}
for round in 1 2 3; do
  for which in old new; do
    bin=$new; [ "$which" = old ] && bin=$old
    w=$(mktemp -d)
    "$bin" init "$w/site" >/dev/null
    printf '\n[[device]]\nname = "d"\nadapter = "files"\npath = "%s"\n' "$data" >> "$w/site/plcvault.toml"
    sync
    s=$(date +%s.%N); "$bin" -q --config "$w/site/plcvault.toml" collect --all >/dev/null; e=$(date +%s.%N)
    s2=$(date +%s.%N); "$bin" -q --config "$w/site/plcvault.toml" collect --all >/dev/null; e2=$(date +%s.%N)
    printf '%s round %s: first %.2f s, second %.2f s\n' "$which" "$round" "$(echo "$e - $s" | bc)" "$(echo "$e2 - $s2" | bc)"
    rm -rf "$w"
  done
done
