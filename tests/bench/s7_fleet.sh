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

start_fleet() { # $1 = name
  "$bin" --json sim --plcs 0 --s7 "$cpus" --blocks "$blocks" --max-requests-per-second "$cap" --response-delay "$delay" \
    --write-config "$work/$1.toml" >"$work/$1.stats" 2>/dev/null &
  echo $! >"$work/$1.pid"
  for _ in $(seq 200); do [ -f "$work/$1.toml" ] && return; sleep 0.1; done
  echo "the simulated fleet did not start" >&2; exit 1
}
stop_fleet() { kill -TERM "$(cat "$work/$1.pid")"; wait "$(cat "$work/$1.pid")" 2>/dev/null || true; }
stats() { # $1 = stats file: requests, highest rate, most in flight, functions
  python3 - "$1" <<'PY'
import json, sys
stats = [json.loads(l)["data"] for l in open(sys.argv[1]) if '"sim-plc"' in l]
fns = sorted({f for s in stats for f in s["functions"]})
print(sum(s["requests"] for s in stats), max(s["max_per_second"] for s in stats),
      max(s["max_in_flight"] for s in stats), "|".join(fns))
PY
}

echo "plcvault: $cpus S7 CPUs x $blocks blocks answering in $delay, cap $cap requests/s per CPU ..."
start_fleet pv
"$bin" -q init "$work/site" >/dev/null
cat "$work/pv.toml" >>"$work/site/plcvault.toml"
printf '\n[collect]\nmax-devices = %s\n' "$cpus" >>"$work/site/plcvault.toml"
pv=("$bin" -q --config "$work/site/plcvault.toml")
t0=$(date +%s.%N)
"${pv[@]}" --json collect --all >"$work/first.jsonl" || true
t1=$(date +%s.%N)
vault_bytes() { find "$work/site/vault" -type f -printf '%s\n' | awk '{s += $1} END {print s}'; }
before=$(vault_bytes)
"${pv[@]}" --json collect --all >"$work/second.jsonl" || true
t2=$(date +%s.%N)
after=$(vault_bytes)
stop_fleet pv
read -r pv_requests pv_max_rate pv_inflight functions < <(stats "$work/pv.stats")
ok=$(grep -c '"status":"ok"' "$work/first.jsonl" || true)
artifacts=$(python3 -c 'import json,sys; print(sum(json.loads(l)["data"]["artifacts"] for l in open(sys.argv[1]) if "\"device\"" in l and "\"artifacts\"" in l))' "$work/first.jsonl")

echo "python-snap7's client, one CPU after another ..."
start_fleet seq
seq_json=$("$py" tests/bench/s7_client.py "$work/seq.toml")
stop_fleet seq
read -r seq_requests _ _ _ < <(stats "$work/seq.stats")
seq_time=$(echo "$seq_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
seq_blocks=$(echo "$seq_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["blocks"])')
pv_time=$(echo "$t1 - $t0" | bc -l)
second_time=$(echo "$t2 - $t1" | bc -l)

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
