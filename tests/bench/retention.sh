#!/usr/bin/env bash
# Retention and off-site benchmark (run by hand, not in CI), issue 13's figures:
#
# 1. 30 nights of the ~1 GiB benchmark set (tests/bench/gen.py, 1% changed a night) into
#    plcvault and into restic, each night dated in the past (plcvault under libfaketime,
#    restic with `backup --time`); then `forget` and `prune` under keep-daily 7,
#    keep-weekly 4, and restic `forget --keep-daily 7 --keep-weekly 4 --prune`. Prints
#    both repositories' sizes before and after, and the ratio (target: plcvault within
#    1.1x of restic after).
# 2. `push` of the pruned vault to a local Garage against `rclone sync` of the same folder
#    to the same bucket (another prefix), same run (target: plcvault within 1.2x of
#    rclone's time), and a plain loopback copy for the floor.
#
#   bash tests/bench/retention.sh [WORKDIR]      (default /tmp/plcvault-retention)
#   NIGHTS=10 bash tests/bench/retention.sh     (a shorter run)
#
# Needs restic, rclone and faketime (Debian packages) and Garage (tests/run.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:-/tmp/plcvault-retention}
nights=${NIGHTS:-30}
garage=${PLCVAULT_GARAGE:-$HOME/.cache/plcvault/garage-2.5.0/bin/garage}
for t in restic rclone faketime; do
  command -v $t >/dev/null || { echo "needs $t: apt-get install $t" >&2; exit 2; }
done
[ -x "$garage" ] || { echo "needs Garage at $garage: run bash tests/run.sh once" >&2; exit 2; }
cargo build --release --quiet
bin=$root/target/release/plcvault
rm -rf "$work" && mkdir -p "$work"
data=$work/data
python3 tests/bench/gen.py "$data" >/dev/null
"$bin" init "$work/site" >/dev/null
cfg=$work/site/plcvault.toml
cat >>"$cfg" <<EOF

[[device]]
name = "bench"
adapter = "files"
path = "$data"

[retention]
keep-daily = 7
keep-weekly = 4
keep-approved = 0
grace = "0s"
EOF
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$work/restic
restic init --quiet >/dev/null
now=$(date +%s)
echo "== $nights nights of $(du -sh "$data" | cut -f1) with 1% changed a night"
for n in $(seq 1 "$nights"); do
  t=$(date -u -d "@$((now - (nights - n) * 86400 - 3600))" '+%Y-%m-%d %H:%M:%S')
  faketime "$t" "$bin" --config "$cfg" -q collect bench >/dev/null
  restic backup --quiet --time "$t" "$data" >/dev/null
  python3 tests/bench/gen.py "$data" --change >/dev/null
done
size() { du -sb "$1" | cut -f1; }
pv_before=$(size "$work/site/vault"); rs_before=$(size "$work/restic")
s0=$(date +%s.%N)
"$bin" --config "$cfg" -q forget >/dev/null
"$bin" --config "$cfg" -q prune >"$work/prune.out"
s1=$(date +%s.%N)
restic forget --quiet --keep-daily 7 --keep-weekly 4 --prune >/dev/null
s2=$(date +%s.%N)
pv_after=$(size "$work/site/vault"); rs_after=$(size "$work/restic")
"$bin" --config "$cfg" -q verify --full --read-data >/dev/null
mib() { echo "scale=1; $1 / 1048576" | bc; }
printf '%-28s %10s %10s %10s\n' "" "before" "after" "forget+prune"
printf '%-28s %8s MiB %8s MiB %9.1f s\n' "plcvault" "$(mib "$pv_before")" "$(mib "$pv_after")" "$(echo "$s1 - $s0" | bc)"
printf '%-28s %8s MiB %8s MiB %9.1f s\n' "restic $(restic version | cut -d' ' -f2)" "$(mib "$rs_before")" "$(mib "$rs_after")" "$(echo "$s2 - $s1" | bc)"
printf 'plcvault / restic after prune: %.2fx (target <= 1.1x); kept snapshots: plcvault %s, restic %s\n' \
  "$(echo "$pv_after / $rs_after" | bc -l)" \
  "$("$bin" --config "$cfg" --json snapshots bench | grep -c '"type":"snapshot"')" \
  "$(restic snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"

echo "== push of the pruned vault to Garage on 127.0.0.1 against rclone sync, same bucket"
# shellcheck source=tests/bench/garage_lib.sh
. tests/bench/garage_lib.sh
start_garage "$work/garage"
trap 'kill $gpid 2>/dev/null || true' EXIT
cat >>"$cfg" <<EOF

[[remote]]
name = "garage"
url = "s3://bench/plcvault"
endpoint = "http://127.0.0.1:$s3"
region = "garage"
EOF
cat >>"$cfg" <<EOF

[[remote]]
name = "garage-etag"
url = "s3://bench/plcvault-etag"
endpoint = "http://127.0.0.1:$s3"
region = "garage"
read-back = "etag"
EOF
cat >>"$cfg" <<EOF

[[remote]]
name = "garage-signed"
url = "s3://bench/plcvault-signed"
endpoint = "http://127.0.0.1:$s3"
region = "garage"
read-back = "signed"
EOF
sync
s0=$(date +%s.%N)
"$bin" --config "$cfg" -q push garage-signed >/dev/null
s1=$(date +%s.%N)
sync
e0=$(date +%s.%N)
"$bin" --config "$cfg" -q push garage-etag >/dev/null
e1=$(date +%s.%N)
sync
p0=$(date +%s.%N)
"$bin" --config "$cfg" -q push garage >/dev/null
p1=$(date +%s.%N)
unset AWS_CA_BUNDLE
RCLONE_CONFIG_G_TYPE=s3 RCLONE_CONFIG_G_PROVIDER=Other RCLONE_CONFIG_G_ENDPOINT="http://127.0.0.1:$s3" \
  RCLONE_CONFIG_G_REGION=garage RCLONE_CONFIG_G_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID \
  RCLONE_CONFIG_G_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
  rclone sync --quiet "$work/site/vault" g:bench/rclone
p2=$(date +%s.%N)
cp -a "$work/site/vault" "$work/plain-copy"; sync
p3=$(date +%s.%N)
vb=$(size "$work/site/vault")
push=$(echo "$p1 - $p0" | bc); rcl=$(echo "$p2 - $p1" | bc); cpy=$(echo "$p3 - $p2" | bc)
printf '%-28s %8.1f s %8.1f MiB/s\n' "plcvault push (verified)" "$push" "$(echo "$vb / 1048576 / $push" | bc -l)"
etag=$(echo "$e1 - $e0" | bc)
printf '%-28s %8.1f s %8.1f MiB/s\n' "plcvault push read-back=etag" "$etag" "$(echo "$vb / 1048576 / $etag" | bc -l)"
signed=$(echo "$s1 - $s0" | bc)
printf '%-28s %8.1f s %8.1f MiB/s\n' "plcvault push read-back=signed" "$signed" "$(echo "$vb / 1048576 / $signed" | bc -l)"
printf '%-28s %8.1f s %8.1f MiB/s\n' "rclone sync $(rclone version | head -1 | cut -d' ' -f2)" "$rcl" "$(echo "$vb / 1048576 / $rcl" | bc -l)"
printf '%-28s %8.1f s %8.1f MiB/s\n' "cp -a (loopback floor)" "$cpy" "$(echo "$vb / 1048576 / $cpy" | bc -l)"
printf 'plcvault push / rclone sync: %.2fx full read-back, %.2fx read-back=etag, %.2fx read-back=signed (target <= 1.2x)\n' "$(echo "$push / $rcl" | bc -l)" "$(echo "$etag / $rcl" | bc -l)" "$(echo "$signed / $rcl" | bc -l)"
"$bin" --config "$cfg" -q verify --remote garage-signed --read-data
"$bin" --config "$cfg" -q verify --remote garage-etag --read-data
"$bin" --config "$cfg" -q verify --remote garage --read-data
