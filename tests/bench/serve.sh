#!/usr/bin/env bash
# Dashboard benchmark (run by hand, not in CI): a vault of 1,000 devices and 100,000 log
# entries (100 nights), served by `plcvault serve`, and what its pages cost. The issue's
# targets are absolute (this 2-core machine): the fleet page and a device page under
# 200 ms each, and 200 concurrent requests answered without an error. The named baseline,
# measured in the same run: `plcvault report` on the same vault (the CLI building the same
# fleet report from scratch, as it does each night).
#
#   bash tests/bench/serve.sh [WORKDIR]      (default /tmp/plcvault-serve)
#   DEVICES=100 NIGHTS=100 bash tests/bench/serve.sh     (a smaller run)
#
# The first night is collected for real, the next ones written by
# vault/examples/history_gen.rs (as in tests/bench/history.sh), then one more real night.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${1:-/tmp/plcvault-serve}
devices=${DEVICES:-1000}
nights=${NIGHTS:-100}
port=${PORT:-18420}
# shellcheck source=tests/bench/files_site_lib.sh
. "$root/tests/bench/files_site_lib.sh"
files_site
printf '\n[serve]\nlisten = "127.0.0.1:%s"\n' "$port" >>"$cfg"
pv=("$bin" -q --config "$cfg")
"${pv[@]}" collect --all >/dev/null
"$gen" "$site/vault" "$site/keys/collector.key" "$nights" >/dev/null
rm -rf "$site/state" && mkdir -p "$site/state"
"${pv[@]}" verify --full >/dev/null
printf 'd0001 changed\n' >>"$work/plant/d0001/OB1.awl"
"${pv[@]}" collect --all >/dev/null || true
echo "== vault: $devices devices, $(sed -n 2p "$site/vault/tlog/checkpoint") log entries"

s=$(date +%s.%N); "${pv[@]}" report >/dev/null || true; e=$(date +%s.%N)
report=$(echo "$e - $s" | bc -l)
printf '%-44s %8.0f ms\n' "baseline: plcvault report (CLI, from scratch)" "$(echo "$report * 1000" | bc -l)"

"${pv[@]}" serve >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/metrics" && break; sleep 0.1; done
url=http://127.0.0.1:$port
# page LABEL PATH: 30 requests one after the other; the median and the slowest.
page() {
  local label=$1 path=$2 times
  times=$(for _ in $(seq 30); do curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$url$path"; done)
  if echo "$times" | grep -vq '^200 '; then echo "$label: not every answer was 200: $times" >&2; exit 1; fi
  echo "$times" | awk '{ print $2 }' | sort -g | awk -v label="$label" -v base="$report" '{ t[NR] = $1 } END {
    med = t[int((NR + 1) / 2)];
    printf "%-44s %8.1f ms median, %6.1f ms slowest (%.3fx the CLI report)\n", label, med * 1000, t[NR] * 1000, med / base }'
}
page "fleet page (/)" /
page "fleet page filtered (/?tag=line3)" "/?tag=line3"
page "device page (/device/d0500)" /device/d0500
page "device page, changed (/device/d0001)" /device/d0001
page "auditor page (/audit)" /audit
page "metrics (/metrics)" /metrics
# The rebuild after the log grows: one more collection, then the first page.
"${pv[@]}" collect d0002 >/dev/null || true
curl -s -o /dev/null -w 'first fleet page after the log grew:                %{time_total} s\n' "$url/"

python3 - "$port" <<'PY'
import http.client, sys, threading, time
port = int(sys.argv[1])
paths = ["/", "/device/d0500", "/audit", "/metrics"] * 50
barrier = threading.Barrier(len(paths))
codes, lock = [], threading.Lock()
def one(path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    barrier.wait()
    try:
        c.request("GET", path)
        r = c.getresponse(); r.read(); code = r.status
    except Exception as e:
        code = repr(e)
    with lock:
        codes.append(code)
start = time.monotonic()
threads = [threading.Thread(target=one, args=(p,)) for p in paths]
for t in threads: t.start()
for t in threads: t.join()
took = time.monotonic() - start
bad = [c for c in codes if c != 200]
print(f"{len(paths)} concurrent requests (fleet, device, audit, metrics): {len(paths) - len(bad)} answered 200, {len(bad)} errors, all in {took:.2f} s")
sys.exit(1 if bad else 0)
PY
echo "serve's peak memory: $(grep VmHWM /proc/$server/status | awk '{print $2 / 1024 " MB"}')"
