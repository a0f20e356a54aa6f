#!/usr/bin/env bash
# The long mutation harness: N seeded cases of each kind (binary cases under a 100 MiB
# address-space limit, parser and whole-vault cases in process), in release mode, with the
# peak memory of the largest process (GNU time, when installed).
#   bash tests/bench/mutate.sh 2000
# Replay one case: PLCVAULT_MUTATION_SEED=S cargo test --test mutate
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-1000}"
cargo build --release --tests -q
run() { PLCVAULT_MUTATIONS="$N" cargo test --release -q --test mutate -- --nocapture --test-threads 1 "$@"; }
start=$(date +%s)
if [ -x /usr/bin/time ]; then
  /usr/bin/time -f "peak memory of the largest process: %M KiB" bash -c "$(declare -f run); N=$N; run damaged_files" 2>&1 | grep -E "mutation harness|peak memory|panicked|FAILED"
  /usr/bin/time -f "peak memory of the largest process: %M KiB" bash -c "$(declare -f run); N=$N; run parsers_and_library" 2>&1 | grep -E "mutation harness|peak memory|panicked|FAILED"
else
  run 2>&1 | grep -E "mutation harness|panicked|FAILED"
fi
echo "N=$N in $(( $(date +%s) - start )) s"
