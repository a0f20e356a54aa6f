#!/usr/bin/env bash
# Log v2 benchmark (run by hand, not in CI): a plant of 1,000 devices collected nightly,
# its log grown to 1,000,000 signed entries (about three years), and what the commands
# cost on it. The issue's targets are absolute (this 2-core machine): `collect DEVICE`,
# `snapshots DEVICE` and an inclusion proof under 0.5 s; `report` under 2 s; `verify`
# after one more night of 1,000 entries under 2 s; `verify --full` under 60 s; peak memory
# under 256 MB; fewer than 5,000 files in log/. It also prints how `collect DEVICE`,
# `snapshots DEVICE`, `verify` and `report` grow from 1,000 to 20,000 entries (target:
# at most 1.5x).
#
#   bash tests/bench/history.sh [WORKDIR]      (default /tmp/plcvault-history)
#   DEVICES=100 NIGHTS=100 bash tests/bench/history.sh     (a smaller run)
#
# The first night is collected for real (files devices, one small file each); the other
# nights are appended by vault/examples/history_gen.rs (unchanged data: one signed
# snapshot entry per device per night, naming the same manifest), which writes entries
# straight into bundles and then brings the tree and checkpoint up to date as a writer
# does.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:-/tmp/plcvault-history}
devices=${DEVICES:-1000}
nights=${NIGHTS:-1000}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time" >&2; exit 2; }
# shellcheck source=tests/bench/files_site_lib.sh
. "$root/tests/bench/files_site_lib.sh"
files_site
pv=("$bin" --config "$cfg")
peak=0
# measure LABEL CMD...: wall seconds and peak RSS of one run.
measure() {
  local label=$1; shift
  sync
  /usr/bin/time -f "%e %M" -o "$work/t" "$@" >"$work/out" 2>&1 || true
  read -r secs kib < <(tail -n 1 "$work/t")
  [ "$kib" -gt "$peak" ] && peak=$kib
  printf '%-34s %8.2f s %8.1f MB\n' "$label" "$secs" "$(echo "$kib / 1024" | bc -l)"
  eval "last_$(echo "$label" | tr -c 'a-z0-9\n' '_')=$secs"
}
entries() { ls "$site/vault/log" | wc -l; }
size() { sed -n 2p "$site/vault/tlog/checkpoint"; }

echo "== night 1: $devices devices collected for real"
/usr/bin/time -f "collect --all: %e s" "${pv[@]}" collect --all >/dev/null
one=d0001
# stage NIGHTS: the log written anew with NIGHTS nights, the state forgotten, and one
# `verify --full` (which builds this host's catalog) measured.
stage() {
  "$gen" "$site/vault" "$site/keys/collector.key" "$1" >/dev/null
  rm -rf "$site/state" && mkdir -p "$site/state"
  echo "== $(size) entries"
  measure "verify --full ($1 nights)" "${pv[@]}" verify --full
}
round() {
  local tag=$1
  measure "collect $one ($tag)" "${pv[@]}" collect "$one"
  measure "snapshots $one ($tag)" "${pv[@]}" snapshots "$one"
  measure "verify ($tag)" "${pv[@]}" verify
  measure "report ($tag)" "${pv[@]}" report
}
stage 1
round small
s_collect=$last_collect_d0001__small_ s_snap=$last_snapshots_d0001__small_ s_verify=$last_verify__small_ s_report=$last_report__small_
stage 20
round 20k
echo "growth from $(( devices )) to $(( devices * 20 )) entries (target at most 1.5x):"
for c in collect snap verify report; do
  eval "a=\$s_$c"
  case $c in
    collect) b=$last_collect_d0001__20k_ ;;
    snap) b=$last_snapshots_d0001__20k_ ;;
    verify) b=$last_verify__20k_ ;;
    report) b=$last_report__20k_ ;;
  esac
  printf '  %-10s %5.2f s -> %5.2f s  (%.2fx)\n' "$c" "$a" "$b" "$(echo "$b / $a" | bc -l)"
done

echo "== the log written with $nights nights"
stage "$nights"
measure "collect $one" "${pv[@]}" collect "$one"
measure "snapshots $one" "${pv[@]}" snapshots "$one"
measure "proof inclusion (middle)" "${pv[@]}" proof inclusion $(( devices * nights / 2 ))
measure "report" "${pv[@]}" report
/usr/bin/time -f "one more night, collect --all: %e s" "${pv[@]}" collect --all >/dev/null
measure "verify (after one more night)" "${pv[@]}" verify
measure "verify --full" "${pv[@]}" verify --full
printf '%-34s %8s\n' "files in log/" "$(entries)"
printf '%-34s %8s\n' "files in tlog/ (tiles, bundles)" "$(find "$site/vault/tlog" -type f | wc -l)"
printf '%-34s %8.1f MB\n' "peak memory of any command" "$(echo "$peak / 1024" | bc -l)"
du -sh "$site/vault" "$site/state" | sed 's/^/disk: /'
