#!/usr/bin/env bash
# S7 fleet benchmark (run by hand, not in CI): simulated S7 CPUs with generated program
# blocks, collected by plcvault with a per-CPU rate cap, against python-snap7's client
# uploading the same blocks one CPU after another. Prints wall time, requests, the highest
# per-CPU rate the CPUs observed, the ratio, and what the unchanged second night stores
# per CPU.
#
#   bash tests/bench/s7_fleet.sh [WORKDIR] [CPUS] [BLOCKS] [CAP] [RESPONSE_DELAY]
#
# RESPONSE_DELAY (default 10ms) is how long each simulated CPU takes to answer a request;
# an S7 CPU answers communication requests at its scan-cycle checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:-/tmp/plcvault-s7-fleet}
cpus=${2:-100}
blocks=${3:-300}
cap=${4:-100}
delay=${5:-10ms}
rm -rf "$work" && mkdir -p "$work"
cargo build --release --quiet
bin=$root/target/release/plcvault
py=$root/.venv/bin/python
[ -x "$py" ] || { echo "needs .venv with python-snap7: run bash tests/run.sh once" >&2; exit 2; }

sim_args=(--s7 "$cpus" --blocks "$blocks" --max-requests-per-second "$cap" --response-delay "$delay")
# shellcheck source=tests/bench/fleet_lib.sh
. tests/bench/fleet_lib.sh

echo "plcvault: $cpus S7 CPUs x $blocks blocks answering in $delay, cap $cap requests/s per CPU ..."
plcvault_nights
artifacts=$(python3 -c 'import json,sys; print(sum(json.loads(l)["data"]["artifacts"] for l in open(sys.argv[1]) if "\"device\"" in l and "\"artifacts\"" in l))' "$work/first.jsonl")

echo "python-snap7's client, one CPU after another ..."
start_fleet seq
seq_json=$("$py" tests/bench/s7_client.py "$work/seq.toml")
stop_fleet seq
read -r seq_requests _ _ _ < <(stats "$work/seq.stats")
seq_time=$(echo "$seq_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
seq_blocks=$(echo "$seq_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["blocks"])')

printf '\n| | plcvault collect --all | python-snap7 client, sequential |\n|---|---|---|\n'
printf '| wall time | %.2f s | %.2f s |\n' "$pv_time" "$seq_time"
printf '| blocks uploaded | %s (artifacts %s) | %s |\n' "$(( artifacts - 3 * cpus ))" "$artifacts" "$seq_blocks"
printf '| requests the CPUs received (plcvault: both nights) | %s | %s |\n' "$pv_requests" "$seq_requests"
printf '| highest requests in one second to one CPU | %s (cap %s) | no cap |\n' "$pv_max_rate" "$cap"
echo "| most requests in flight to one CPU | $pv_inflight | 1 |"
echo "| functions the CPUs received (plcvault) | $functions | |"
printf '\nplcvault is %.1fx faster (%s of %s CPUs ok); the unchanged second night took %.2f s and grew the vault by %d bytes per CPU\n' \
  "$(echo "$seq_time / $pv_time" | bc -l)" "$ok" "$cpus" "$second_time" "$(( (after - before) / cpus ))"
echo "(machine: $(nproc) cores; $(date -u +%Y-%m-%d))"
