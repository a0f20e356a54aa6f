#!/usr/bin/env bash
# Push timing in rounds (run by hand, not in CI): the vault that tests/bench/retention.sh
# left in WORKDIR/site pushed to a fresh single-node Garage on 127.0.0.1 with each
# read-back mode, and the same folder sent by `rclone sync`, each to its own prefix,
# the order rotated every round so that a busy moment of the machine does not fall on one
# tool. Prints every time, each tool's median and the medians' ratios to rclone's.
#
#   bash tests/bench/retention.sh /tmp/ret      (once: makes the vault)
#   ROUNDS=3 bash tests/bench/push.sh /tmp/ret
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:?WORKDIR of tests/bench/retention.sh}
rounds=${ROUNDS:-3}
garage=${PLCVAULT_GARAGE:-$HOME/.cache/plcvault/garage-2.5.0/bin/garage}
[ -d "$work/site/vault" ] || { echo "no vault in $work/site: run tests/bench/retention.sh $work first" >&2; exit 2; }
cargo build --release --quiet
bin=$root/target/release/plcvault
g=$(mktemp -d)
# shellcheck source=tests/bench/garage_lib.sh
. tests/bench/garage_lib.sh
start_garage "$g"
trap 'kill $gpid 2>/dev/null || true; rm -rf "$g" "$work/site/push-bench.toml"' EXIT
# Beside the site's config, so that its relative paths hold; each push signs a `copy`
# entry into that vault's log.
cfg=$work/site/push-bench.toml
sed '/^\[\[remote\]\]/,$d' "$work/site/plcvault.toml" >"$cfg"
for r in $(seq "$rounds"); do
  for mode in full etag signed; do
    printf '\n[[remote]]\nname = "%s-%s"\nurl = "s3://bench/%s-%s"\nendpoint = "http://127.0.0.1:%s"\nregion = "garage"\nread-back = "%s"\n' \
      "$mode" "$r" "$mode" "$r" "$s3" "$mode" >>"$cfg"
  done
done
run() { # $1 = tool, $2 = round: prints seconds
  local t0 t1
  sync
  t0=$(date +%s.%N)
  if [ "$1" = rclone ]; then
    RCLONE_CONFIG_G_TYPE=s3 RCLONE_CONFIG_G_PROVIDER=Other RCLONE_CONFIG_G_ENDPOINT="http://127.0.0.1:$s3" \
      RCLONE_CONFIG_G_REGION=garage RCLONE_CONFIG_G_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID \
      RCLONE_CONFIG_G_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY AWS_CA_BUNDLE= \
      rclone sync --quiet "$work/site/vault" "g:bench/rclone-$2"
  else
    "$bin" --config "$cfg" -q push "$1-$2" >/dev/null
  fi
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
tools=(full etag signed rclone)
: >"$g/times"
for r in $(seq "$rounds"); do
  for i in 0 1 2 3; do
    t=${tools[$(( (i + r - 1) % 4 ))]}
    s=$(run "$t" "$r")
    echo "$t $s" >>"$g/times"
    printf 'round %s %-7s %6.2f s\n' "$r" "$t" "$s"
  done
done
python3 - "$g/times" "$(du -sb "$work/site/vault" | cut -f1)" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    t, s = line.split()
    times.setdefault(t, []).append(float(s))
size = int(sys.argv[2]) / 1048576
med = {t: statistics.median(v) for t, v in times.items()}
for t in ("full", "etag", "signed", "rclone"):
    name = "rclone sync" if t == "rclone" else f"plcvault push read-back={t}"
    print(f"{name:32} median {med[t]:5.2f} s {size / med[t]:7.1f} MiB/s  /rclone {med[t] / med['rclone']:.2f}x")
PY
