# Shared by the fleet benchmarks (sourced, not run): a simulated fleet from `plcvault
# sim "${sim_args[@]}"` started and stopped by name, the request counts it prints on
# stop, and plcvault's two nights of `collect --all` over it. Needs $bin, $work, $cpus
# and the sim_args array.

start_fleet() { # $1 = name
  "$bin" --json sim --plcs 0 "${sim_args[@]}" --write-config "$work/$1.toml" >"$work/$1.stats" 2>/dev/null &
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
vault_bytes() { find "$work/site/vault" -type f -printf '%s\n' | awk '{s += $1} END {print s}'; }

# Two nights of plcvault over a fresh fleet: sets pv_time, second_time, before, after,
# pv_requests, pv_max_rate, pv_inflight, functions, ok; the runs' output in
# $work/first.jsonl and $work/second.jsonl.
plcvault_nights() {
  start_fleet pv
  "$bin" -q init "$work/site" >/dev/null
  cat "$work/pv.toml" >>"$work/site/plcvault.toml"
  printf '\n[collect]\nmax-devices = %s\n' "$cpus" >>"$work/site/plcvault.toml"
  pv=("$bin" -q --config "$work/site/plcvault.toml")
  local t0 t1 t2
  t0=$(date +%s.%N)
  "${pv[@]}" --json collect --all >"$work/first.jsonl" || true
  t1=$(date +%s.%N)
  before=$(vault_bytes)
  "${pv[@]}" --json collect --all >"$work/second.jsonl" || true
  t2=$(date +%s.%N)
  after=$(vault_bytes)
  stop_fleet pv
  read -r pv_requests pv_max_rate pv_inflight functions < <(stats "$work/pv.stats")
  ok=$(grep -c '"status":"ok"' "$work/first.jsonl" || true)
  pv_time=$(echo "$t1 - $t0" | bc -l)
  second_time=$(echo "$t2 - $t1" | bc -l)
}
