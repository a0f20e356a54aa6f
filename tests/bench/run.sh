#!/usr/bin/env bash
# Benchmark (run by hand, not in CI): plcvault against restic and borg on the same ~1 GiB
# plant in one run, warm cache, plus the hashing floor (sha256sum, openssl) and a plain copy.
#
#   bash tests/bench/run.sh [WORKDIR]      (default /tmp/plcvault-bench; needs ~8 GiB free)
#
# restic and borg are used when installed (Debian: apt-get install restic borgbackup).
# Prints, for each step, the wall time, the peak memory and the ratio to restic.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:-/tmp/plcvault-bench}
data=$work/data
rm -rf "$work" && mkdir -p "$work"

cargo build --release --quiet
bin=$root/target/release/plcvault
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time" >&2; exit 2; }

echo "generating the data set in $data ..."
python3 tests/bench/gen.py "$data"
size=$(du -sb "$data" | cut -f1)
files=$(find "$data" -type f | wc -l)
printf 'data set: %s files, %.0f MiB\n\n' "$files" "$(echo "$size / 1048576" | bc -l)"
cp -a "$data" "$work/pristine"   # the same starting point for every tool

declare -A T M
# run NAME CMD...: time a command, keep wall seconds and peak RSS (MiB).
run() {
  local name=$1; shift
  sync  # start every step with no dirty pages of the step before
  /usr/bin/time -f "%e %M" -o "$work/time.$$" "$@" >"$work/out.$$" 2>&1 || {
    echo "step $name failed:"; cat "$work/out.$$"; exit 1; }
  read -r secs kb <"$work/time.$$"
  T[$name]=$secs
  M[$name]=$((kb / 1024))
}
reset_data() { rm -rf "$data"; cp -a "$work/pristine" "$data"; cat "$data"/hmi/* >/dev/null; }

echo "hashing floor ..."
run sha256sum bash -c "find '$data' -type f -print0 | sort -z | xargs -0 cat | sha256sum"
run openssl bash -c "find '$data' -type f -print0 | sort -z | xargs -0 cat | openssl dgst -sha256"
run cp cp -r "$data" "$work/copy"
rm -rf "$work/copy"

echo "plcvault ..."
reset_data
"$bin" -q init "$work/site" >/dev/null
cat >>"$work/site/plcvault.toml" <<EOC
[[device]]
name = "bench"
adapter = "files"
path = "$data"
EOC
pv=("$bin" -q --config "$work/site/plcvault.toml")
run pv_first "${pv[@]}" collect --all
python3 tests/bench/gen.py "$data" --change
run pv_second "${pv[@]}" collect --all
run pv_verify "${pv[@]}" verify --read-data
run pv_restore "${pv[@]}" restore bench --to "$work/pv-restore"
cmp -s "$data/hmi/panel3.img" "$work/pv-restore/hmi/panel3.img" || { echo "plcvault restore differs"; exit 1; }
pv_size=$(du -sb "$work/site/vault" | cut -f1)
rm -rf "$work/pv-restore"
# A restore drill (restore, read every file back, compare every SHA-256, sign the result)
# against a plain copy of the same files.
run pv_drill "${pv[@]}" drill bench --to "$work/pv-drill"
run cp_drill cp -r "$data" "$work/cp-drill"
rm -rf "$work/pv-drill" "$work/cp-drill"

have_restic=0
if command -v restic >/dev/null; then
  have_restic=1
  echo "restic ..."
  reset_data
  export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$work/restic
  restic init -q >/dev/null
  run restic_first restic backup -q "$data"
  python3 tests/bench/gen.py "$data" --change
  run restic_second restic backup -q "$data"
  run restic_verify restic check -q --read-data
  run restic_restore restic restore latest -q --target "$work/restic-restore"
  restic_size=$(du -sb "$work/restic" | cut -f1)
  rm -rf "$work/restic-restore"
fi

have_borg=0
if command -v borg >/dev/null; then
  have_borg=1
  echo "borg ..."
  reset_data
  export BORG_REPO=$work/borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
  borg init -e none >/dev/null 2>&1
  run borg_first borg create "::first" "$data"
  python3 tests/bench/gen.py "$data" --change
  run borg_second borg create "::second" "$data"
  run borg_verify borg check --verify-data
  mkdir -p "$work/borg-restore"
  run borg_restore bash -c "cd '$work/borg-restore' && borg extract ::second"
  borg_size=$(du -sb "$work/borg" | cut -f1)
  rm -rf "$work/borg-restore"
fi

echo "plcvault peak memory with one 2 GiB file ..."
mkdir -p "$work/big/data"
head -c 2G /dev/urandom >"$work/big/data/disk.img"
"$bin" -q init "$work/big/site" >/dev/null
printf '[[device]]\nname = "big"\nadapter = "files"\npath = "%s"\n' "$work/big/data" >>"$work/big/site/plcvault.toml"
run pv_2g "$bin" -q --config "$work/big/site/plcvault.toml" collect --all
run pv_2g_restore "$bin" -q --config "$work/big/site/plcvault.toml" restore big --to "$work/big/out"
rm -rf "$work/big"

ratio() { if [ "$have_restic" = 1 ]; then echo "scale=2; $1 / ${T[$2]}" | bc; else echo "-"; fi; }
echo
echo "| step | plcvault | restic 0.14 | borg 1.2 | plcvault / restic |"
echo "|---|---|---|---|---|"
for step in first second verify restore; do
  r="-"; b="-"
  [ "$have_restic" = 1 ] && r="${T[restic_$step]} s, ${M[restic_$step]} MiB"
  [ "$have_borg" = 1 ] && b="${T[borg_$step]} s, ${M[borg_$step]} MiB"
  echo "| $step | ${T[pv_$step]} s, ${M[pv_$step]} MiB | $r | $b | $(ratio "${T[pv_$step]}" "restic_$step") |"
done
mib() { echo "scale=0; $1 / 1048576" | bc; }
rs="-"; bs="-"; rr="-"
[ "$have_restic" = 1 ] && rs="$(mib "$restic_size") MiB" && rr=$(echo "scale=3; $pv_size / $restic_size" | bc)
[ "$have_borg" = 1 ] && bs="$(mib "$borg_size") MiB"
echo "| vault size | $(mib "$pv_size") MiB | $rs | $bs | $rr |"
echo
printf 'drill (restore + read back + hash proof + signed record) %s s against cp -r %s s: %.2fx (target <= 1.3x)\n' "${T[pv_drill]}" "${T[cp_drill]}" "$(echo "${T[pv_drill]} / ${T[cp_drill]}" | bc -l)"
echo "hashing floor over the same data: sha256sum ${T[sha256sum]} s, openssl ${T[openssl]} s; cp -r ${T[cp]} s"
echo "plcvault with one 2 GiB file: collect ${T[pv_2g]} s, peak ${M[pv_2g]} MiB; restore ${T[pv_2g_restore]} s, peak ${M[pv_2g_restore]} MiB"
echo "(machine: $(nproc) cores, $(uname -m); $(date -u +%Y-%m-%d))"
