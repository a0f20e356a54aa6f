#!/usr/bin/env bash
# FTP and SFTP benchmark (run by hand, not in CI): collecting the ~1 GiB plant of
# tests/bench/gen.py on loopback with plcvault (listing, transfer, hashing, chunking,
# compressing, storing) against outside clients fetching the same tree from the same
# server in the same run (transfer and writing files only): over FTP from pyftpdlib,
# `wget -m` and `curl` per file; over SFTP from OpenSSH's sshd, OpenSSH's `sftp` client
# (`get -r`). plcvault runs at max-requests-per-second = 10000 (the ceiling, for servers
# and workstations; panels keep the default of 10).
#
#   bash tests/bench/ftp.sh [WORKDIR]      (default /tmp/plcvault-ftp-bench; ~5 GiB free)
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
max-requests-per-second = 10000
CFG

# SFTP: sshd on loopback with a throw-away host key, logging in as this user by key.
ssh=$work/sshd && mkdir -p "$ssh" /run/sshd 2>/dev/null || mkdir -p "$ssh"
ssh-keygen -q -t ed25519 -N "" -f "$ssh/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$ssh/client_key"
cp "$ssh/client_key.pub" "$ssh/authorized_keys"
sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$ssh/sshd_config" <<CFG
Port $sport
ListenAddress 127.0.0.1
HostKey $ssh/host_key
PidFile none
AuthorizedKeysFile $ssh/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin yes
LogLevel FATAL
Subsystem sftp /usr/lib/openssh/sftp-server -R
CFG
/usr/sbin/sshd -D -e -f "$ssh/sshd_config" &
sshd=$!
trap 'kill $server $sshd 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$sport) 2>/dev/null && break; sleep 0.1; done
fp=$(ssh-keygen -lf "$ssh/host_key.pub" | awk '{print $2}')
# A vault of its own, so that nothing the FTP run stored is deduplicated.
"$bin" -q init "$work/site2" >/dev/null
cat >> "$work/site2/plcvault.toml" <<CFG

[[device]]
name = "bench-sftp"
adapter = "ftp"
protocol = "sftp"
address = "127.0.0.1:$sport"
user = "$(id -un)"
key-file = "$ssh/client_key"
host-key-fingerprint = "$fp"
root = "$work/data"
max-requests-per-second = 10000
CFG
echo "get -r $work/data $work/sftp" > "$work/sftp.batch"

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
run sftp sftp -q -b "$work/sftp.batch" -i "$ssh/client_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -P "$sport" "$(id -un)@127.0.0.1"
run plcvault-sftp "$bin" --config "$work/site2/plcvault.toml" -q collect bench-sftp
run plcvault-sftp-again "$bin" --config "$work/site2/plcvault.toml" -q collect bench-sftp

printf '\nFTP (pyftpdlib)\n%-20s %8s %9s %10s\n' step seconds "peak MiB" "vs wget"
for s in wget curl plcvault plcvault-again; do
  printf '%-20s %8s %9s %9.2fx\n' "$s" "${T[$s]}" "${M[$s]}" "$(echo "${T[$s]} / ${T[wget]}" | bc -l)"
done
printf '\nSFTP (OpenSSH sshd)\n%-20s %8s %9s %10s\n' step seconds "peak MiB" "vs sftp"
for s in sftp plcvault-sftp plcvault-sftp-again; do
  printf '%-20s %8s %9s %9.2fx\n' "$s" "${T[$s]}" "${M[$s]}" "$(echo "${T[$s]} / ${T[sftp]}" | bc -l)"
done
