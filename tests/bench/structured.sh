#!/usr/bin/env bash
# Structured-diff benchmark (run by hand, not in CI): `plcvault diff` of two snapshots of
# one project export, on one core (taskset), against GNU diff of the same two files (the
# line diff a reviewer gets without plcvault) measured in the same run.
#
#   bash tests/bench/structured.sh [WORKDIR]      (default /tmp/plcvault-structured)
#
# Cases: the 1.1 MB CODESYS PLCopen pair of the shared corpus (PLCVAULT_CORPUS, default
# ../shared/corpus; skipped, saying so, where there is none), and a generated 20 MB
# controller L5X (tests/bench/gen_l5x.py: 2,000 routines, 50,000 rungs, 20,000 tags) with
# one rung changed. Prints wall time, peak memory, memory per byte of the file, and the
# ratio to GNU diff.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:-/tmp/plcvault-structured}
corpus=${PLCVAULT_CORPUS:-$root/../shared/corpus}
rm -rf "$work" && mkdir -p "$work"
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time" >&2; exit 2; }
cargo build --release --quiet
bin=$root/target/release/plcvault

# measure OUT CMD...: wall seconds and peak RSS (KiB) of a command on core 0, in OUT.
measure() {
  local out=$1; shift
  sync
  /usr/bin/time -f "%e %M" -o "$out" taskset -c 0 "$@" >"$out.stdout" 2>"$out.stderr" || true
}

# bench NAME OLD NEW: two snapshots of a files device holding the export, then `diff`.
bench() {
  local name=$1 old=$2 new=$3
  local base; base=$(basename "$old")
  local w=$work/$name
  mkdir -p "$w/plant"
  "$bin" init "$w/site" >/dev/null
  printf '\n[[device]]\nname = "ews"\nadapter = "files"\npath = "%s"\n' "$w/plant" >>"$w/site/plcvault.toml"
  local cfg=$w/site/plcvault.toml
  cp "$old" "$w/plant/$base"
  "$bin" -q --config "$cfg" collect ews >/dev/null
  cp "$new" "$w/plant/$base"
  "$bin" -q --config "$cfg" collect ews >/dev/null || true
  local ids
  ids=$("$bin" --json --config "$cfg" snapshots ews | python3 -c '
import json, sys
ids = [r["data"]["id"] for r in map(json.loads, sys.stdin) if r.get("type") == "snapshot"]
print(ids[0], ids[-1])')
  read -r first second <<<"$ids"
  # Warm the page cache for both tools.
  cat "$old" "$new" >/dev/null
  measure "$w/gnu" diff "$old" "$new"
  measure "$w/ours" "$bin" --json --config "$cfg" diff ews --snapshot "$second" --against "$first"
  read -r gs gk < <(tail -1 "$w/gnu")
  read -r os ok < <(tail -1 "$w/ours")
  local size; size=$(stat -c %s "$new")
  local findings
  findings=$(python3 -c '
import json, sys
f = [r["data"] for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "finding"]
real = [r for r in f if r["class"] != "cosmetic"]
first = (real or f)[0]["summary"]
print(f"{len(f)} findings ({len(real)} not cosmetic); first: {first}")' "$w/ours.stdout")
  printf '%-34s %6.1f MB  plcvault diff %5.2f s %6.0f MiB (%.1f x the file)   GNU diff %5.2f s %5.0f MiB   ratio %.1f\n' \
    "$name" "$(echo "$size / 1000000" | bc -l)" "$os" "$(echo "$ok / 1024" | bc -l)" \
    "$(echo "$ok * 1024 / $size" | bc -l)" "$gs" "$(echo "$gk / 1024" | bc -l)" "$(echo "$os / $gs" | bc -l)"
  echo "    $findings"
}

pair=$corpus/plcopen/MichielVanwelsenaere-HomeAutomation.CoDeSys3
if [ -d "$pair" ]; then
  bench "CODESYS PLCopen pair (corpus)" "$pair/89b6545/src/Exports/PLCopen.xml" "$pair/298b7bf/src/Exports/PLCopen.xml"
else
  echo "DID NOT RUN the PLCopen case: no corpus at $corpus (set PLCVAULT_CORPUS)"
fi
python3 tests/bench/gen_l5x.py "$work/Bench.L5X"
python3 tests/bench/gen_l5x.py "$work/Bench-changed.L5X" --change
mkdir -p "$work/changed" && mv "$work/Bench-changed.L5X" "$work/changed/Bench.L5X"
bench "generated controller L5X" "$work/Bench.L5X" "$work/changed/Bench.L5X"
