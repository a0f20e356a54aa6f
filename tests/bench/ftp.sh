#!/usr/bin/env bash
# FTP benchmark (run by hand, not in CI): collecting the ~1 GiB plant of tests/bench/gen.py
# from pyftpdlib on loopback with plcvault (listing, transfer, hashing, chunking,
# compressing, storing) against `wget -m` and `curl` fetching the same tree from the same
# server in the same run (transfer and writing files only).
#
#   bash tests/bench/ftp.sh [WORKDIR]      (default /tmp/plcvault-ftp-bench; ~4 GiB free)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:-/tmp/plcvault-ftp-bench}
rm -rf "$work" && mkdir -p "$work"
cargo build --release --quiet
bin=$root/target/release/plcvault
py=$root/.venv/bin/python
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time" >&2; exit 2; }

python3 tests/bench/gen.py "$work/data"
size=$(du -sb "$work/data" | cut -f1)
files=$(find "$work/data" -type f | wc -l)
printf 'data set: %s files, %.0f MiB\n' "$files" "$(echo "$size / 1048576" | bc -l)"

"$py" tests/peers/ftp_server.py "$work/data" "$work/commands.jsonl" > "$work/server.out" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q PORT "$work/server.out" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/PORT/ {print $2}' "$work/server.out")

"$bin" -q init "$work/site" >/dev/null
echo secret > "$work/site/ftp.pass"
cat >> "$work/site/plcvault.toml" <<CFG

[[device]]
name = "bench"
adapter = "ftp"
address = "127.0.0.1:$port"
user = "plc"
password-file = "ftp.pass"
max-requests-per-second = 1000
CFG

declare -A T M
run() {
  local name=$1; shift
  sync
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>&1 || { echo "step $name failed:"; cat "$work/out"; exit 1; }
  read -r secs kb <"$work/time"
  T[$name]=$secs; M[$name]=$((kb / 1024))
}
cat "$work"/data/hmi/* >/dev/null 2>&1 || true
run wget wget -q -m -nH -P "$work/wget" "ftp://plc:secret@127.0.0.1:$port/"
run curl bash -c "cd '$work/data' && find . -type f | sed 's|^\./||' | while read -r f; do mkdir -p \"$work/curl/\$(dirname \"\$f\")\"; curl -s -o \"$work/curl/\$f\" \"ftp://plc:secret@127.0.0.1:$port/\$f\"; done"
run plcvault "$bin" --config "$work/site/plcvault.toml" -q collect bench
run plcvault-again "$bin" --config "$work/site/plcvault.toml" -q collect bench

printf '\n%-16s %8s %9s %10s\n' step seconds "peak MiB" "vs wget"
for s in wget curl plcvault plcvault-again; do
  printf '%-16s %8s %9s %9.2fx\n' "$s" "${T[$s]}" "${M[$s]}" "$(echo "${T[$s]} / ${T[wget]}" | bc -l)"
done
