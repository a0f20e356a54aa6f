#!/usr/bin/env bash
# Fleet benchmark (run by hand, not in CI): 200 simulated PLCs with 10,000 holding
# registers each, collected with a per-device cap of 50 requests/s, against a plain
# sequential pymodbus client reading the same fleet. Prints wall time, total requests,
# the highest per-device rate the PLCs observed, the ratio, and the new data the second
# (unchanged) night stores per device.
#
#   bash tests/bench/fleet.sh [WORKDIR] [PLCS] [REGISTERS] [CAP] [RESPONSE_DELAY]
#
# RESPONSE_DELAY (default 10ms) is how long each simulated PLC takes to answer; real
# controllers answer Modbus requests within their scan cycle, typically 5-20 ms.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:-/tmp/plcvault-fleet}
plcs=${2:-200}
registers=${3:-10000}
cap=${4:-50}
delay=${5:-10ms}
rm -rf "$work" && mkdir -p "$work"
cargo build --release --quiet
bin=$root/target/release/plcvault
py=$root/.venv/bin/python
[ -x "$py" ] || { echo "needs .venv with pymodbus: run bash tests/run.sh once" >&2; exit 2; }

start_fleet() { # $1 = name
  "$bin" --json sim --plcs "$plcs" --registers "$registers" --max-requests-per-second "$cap" --response-delay "$delay" \
    --write-config "$work/$1.toml" >"$work/$1.stats" 2>/dev/null &
  echo $! >"$work/$1.pid"
  for _ in $(seq 100); do [ -f "$work/$1.toml" ] && return; sleep 0.1; done
  echo "the simulated fleet did not start" >&2; exit 1
}
stop_fleet() { kill -TERM "$(cat "$work/$1.pid")"; wait "$(cat "$work/$1.pid")" 2>/dev/null || true; }

echo "plcvault: $plcs PLCs x $registers registers answering in $delay, cap $cap requests/s per PLC ..."
start_fleet pv
"$bin" -q init "$work/site" >/dev/null
cat "$work/pv.toml" >>"$work/site/plcvault.toml"
printf '\n[collect]\nmax-devices = %s\n' "$plcs" >>"$work/site/plcvault.toml"
pv=("$bin" -q --config "$work/site/plcvault.toml")
t0=$(date +%s.%N)
"${pv[@]}" --json collect --all >"$work/first.jsonl"
t1=$(date +%s.%N)
vault_bytes() { find "$work/site/vault" -type f -printf '%s\n' | awk '{s += $1} END {print s}'; }
before=$(vault_bytes)
"${pv[@]}" --json collect --all >"$work/second.jsonl"
t2=$(date +%s.%N)
after=$(vault_bytes)
stop_fleet pv
pv_time=$(echo "$t1 - $t0" | bc -l)
second_time=$(echo "$t2 - $t1" | bc -l)
read -r pv_requests pv_max_rate pv_inflight functions < <(python3 - "$work/pv.stats" <<'PY'
import json, sys
stats = [json.loads(l)["data"] for l in open(sys.argv[1]) if '"sim-plc"' in l]
fns = sorted({f for s in stats for f in s["functions"]})
print(sum(s["requests"] for s in stats), max(s["max_per_second"] for s in stats),
      max(s["max_in_flight"] for s in stats), ",".join(map(str, fns)))
PY
)
ok=$(grep -c '"status":"ok"' "$work/first.jsonl" || true)

echo "sequential pymodbus client ..."
start_fleet seq
seq_json=$("$py" tests/bench/sequential_client.py "$work/seq.toml")
stop_fleet seq
seq_time=$(echo "$seq_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
seq_requests=$(echo "$seq_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')

printf '\n| | plcvault collect --all | sequential pymodbus client |\n|---|---|---|\n'
printf '| wall time | %.2f s | %.2f s |\n' "$pv_time" "$seq_time"
printf '| requests (plcvault: both nights) | %s | %s |\n' "$pv_requests" "$seq_requests"
printf '| highest requests in one second to one PLC | %s (cap %s) | no cap |\n' "$pv_max_rate" "$cap"
echo "| most requests in flight to one PLC | $pv_inflight | 1 |"
echo "| function codes the PLCs received | $functions | 3 |"
printf '\nplcvault is %.1fx faster (%s of %s devices ok); the unchanged second night took %.2f s and stored %d bytes per device (growth of all vault files: log entry, manifest, packs)\n' \
  "$(echo "$seq_time / $pv_time" | bc -l)" "$ok" "$plcs" "$second_time" "$(( (after - before) / plcs ))"
echo "(machine: $(nproc) cores; $(date -u +%Y-%m-%d))"
