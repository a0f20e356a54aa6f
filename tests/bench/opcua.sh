#!/usr/bin/env bash
# OPC UA snapshot benchmark (run by hand, not in CI): the asyncua server
# (tests/peers/opcua_peer.py) with NODES variables under ns=2;s=Config, snapshot by
# plcvault (`collect`, security None) against a plain asyncua client script browsing and
# reading the same nodes (tests/bench/opcua_client.py), same server, same run, each three
# times in turn. Prints each time, the medians and the ratio (target: plcvault <= 0.5x).
#
#   bash tests/bench/opcua.sh [WORKDIR] [NODES]      (defaults /tmp/plcvault-opcua 20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:-/tmp/plcvault-opcua}
nodes=${2:-20000}
py=$root/.venv/bin/python
[ -x "$py" ] || { echo "needs .venv with asyncua: run bash tests/run.sh once" >&2; exit 2; }
cargo build --release --quiet
bin=$root/target/release/plcvault
rm -rf "$work" && mkdir -p "$work/server"
mkfifo "$work/stdin"
"$py" tests/peers/opcua_peer.py server "{\"nodes\": $nodes, \"dir\": \"$work/server\"}" <"$work/stdin" >"$work/server.log" 2>/dev/null &
spid=$!
exec 3>"$work/stdin"
trap 'exec 3>&-; kill $spid 2>/dev/null || true' EXIT
echo "building an address space of $nodes variables in asyncua ..."
for _ in $(seq 600); do grep -q '"ready"' "$work/server.log" 2>/dev/null && break; sleep 0.5; done
port=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["port"])' "$work/server.log")
url="opc.tcp://127.0.0.1:$port/plcvault/"
"$bin" -q init "$work/site" >/dev/null
cat >>"$work/site/plcvault.toml" <<EOT

[[device]]
name = "scada"
adapter = "opcua"
address = "$url"
security-policy = "None"
nodes = ["ns=2;s=Config"]
max-requests-per-second = 1000
timeout = "30s"
EOT
: >"$work/times"
for r in 1 2 3; do
  t0=$(date +%s.%N)
  "$bin" -q --config "$work/site/plcvault.toml" collect scada >/dev/null || true
  t1=$(date +%s.%N)
  echo "plcvault $(echo "$t1 - $t0" | bc)" >>"$work/times"
  out=$("$py" tests/bench/opcua_client.py "$url" "ns=2;s=Config")
  echo "asyncua $(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')" >>"$work/times"
  echo "round $r: $(tail -2 "$work/times" | tr '\n' ' ')"
done
lines=$("$bin" -q --config "$work/site/plcvault.toml" dump scada 'nodes/ns=2;s=Config.txt' | tail -n +4 | wc -l)
python3 - "$work/times" "$lines" "$out" <<'PY'
import json, statistics, sys
t = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    t.setdefault(k, []).append(float(v))
m = {k: statistics.median(v) for k, v in t.items()}
seen = json.loads(sys.argv[3])
print(f"plcvault collect        median {m['plcvault']:6.2f} s  ({sys.argv[2]} node lines stored)")
print(f"asyncua client script   median {m['asyncua']:6.2f} s  ({seen['nodes']} nodes, {seen['variables']} variables read)")
print(f"plcvault / asyncua: {m['plcvault'] / m['asyncua']:.2f}x (target <= 0.5x)")
PY
echo "(machine: $(nproc) cores; $(date -u +%Y-%m-%d))"
