#!/usr/bin/env bash
# EtherNet/IP fleet benchmark (run by hand, not in CI): simulated Logix controllers with
# generated tags, collected by plcvault with a per-controller rate cap, against pycomm3's
# LogixDriver reading the same tags one controller after another. Prints wall time,
# requests, the highest per-controller rate the controllers observed, the ratio, and what
# the unchanged second night stores per controller.
#
#   bash tests/bench/enip_fleet.sh [WORKDIR] [CONTROLLERS] [TAGS] [CAP] [RESPONSE_DELAY]
#
# RESPONSE_DELAY (default 5ms) is how long each simulated controller takes to answer a
# request (a Logix controller serves messages in its communication time slice).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:-/tmp/plcvault-enip-fleet}
cpus=${2:-100}
tags=${3:-5000}
cap=${4:-100}
delay=${5:-5ms}
rm -rf "$work" && mkdir -p "$work"
cargo build --release --quiet
bin=$root/target/release/plcvault
py=$root/.venv/bin/python
[ -x "$py" ] || { echo "needs .venv with pycomm3: run bash tests/run.sh once" >&2; exit 2; }

sim_args=(--enip "$cpus" --enip-tags "$tags" --max-requests-per-second "$cap" --response-delay "$delay")
# shellcheck source=tests/bench/fleet_lib.sh
. tests/bench/fleet_lib.sh

echo "plcvault: $cpus Logix controllers x $tags tags answering in $delay, cap $cap requests/s per controller ..."
plcvault_nights
tags_read() { # $1 = collect --json output: tag lines stored
  python3 - "$1" "$work/site" "$bin" <<'PY'
import json, subprocess, sys
out, site, bin = sys.argv[1:]
devs = [json.loads(l)["data"]["device"] for l in open(out) if '"type":"device"' in l]
n = 0
for d in devs:
    for a in ("tags/controller.csv", "tags/program-MainProgram.csv"):
        t = subprocess.run([bin, "-q", "--config", f"{site}/plcvault.toml", "dump", d, a],
                           capture_output=True, text=True).stdout
        n += sum(1 for l in t.splitlines()[3:] if "!not read" not in l)
print(n)
PY
}
stored=$(tags_read "$work/first.jsonl")

echo "pycomm3's LogixDriver, one controller after another ..."
start_fleet seq
seq_json=$("$py" tests/bench/enip_client.py "$work/seq.toml")
stop_fleet seq
read -r seq_requests _ _ _ < <(stats "$work/seq.stats")
seq_time=$(echo "$seq_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
seq_tags=$(echo "$seq_json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["tags"] - d["errors"])')

printf '\n| | plcvault collect --all | pycomm3 LogixDriver, sequential |\n|---|---|---|\n'
printf '| wall time | %.2f s | %.2f s |\n' "$pv_time" "$seq_time"
printf '| tags read | %s | %s |\n' "$stored" "$seq_tags"
printf '| requests the controllers received (encapsulation frames; plcvault: both nights) | %s | %s |\n' "$pv_requests" "$seq_requests"
printf '| highest requests in one second to one controller | %s (cap %s) | no cap |\n' "$pv_max_rate" "$cap"
echo "| most requests in flight to one controller | $pv_inflight | 1 |"
echo "| services the controllers received (plcvault) | $functions | |"
printf '\nplcvault is %.1fx faster (%s of %s controllers ok); the unchanged second night took %.2f s and grew the vault by %d bytes per controller\n' \
  "$(echo "$seq_time / $pv_time" | bc -l)" "$ok" "$cpus" "$second_time" "$(( (after - before) / cpus ))"
echo "(machine: $(nproc) cores; $(date -u +%Y-%m-%d))"
