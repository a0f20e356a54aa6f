#!/usr/bin/env bash
# The full test suite, exactly as CI runs it (.ci/run calls this script).
# Installs what the tests need, then: rustfmt check, clippy with warnings denied, the
# dependency rule for the vault crate, and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

export PLCVAULT_REQUIRE_PEERS="${PLCVAULT_REQUIRE_PEERS:-1}"

echo "== toolchain"
cargo --version
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  echo "rustfmt and clippy are needed: rustup component add rustfmt clippy" >&2
  exit 2
fi

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== the vault crate stays synchronous and offline"
forbidden=$(cargo tree -p vault -e normal --prefix none | awk '{print $1}' | grep -xE 'tokio|mio|socket2|clap|reqwest|hyper|tokio-modbus' | sort -u || true)
if [ -n "$forbidden" ]; then
  echo "vault depends on: $forbidden (it must have no async runtime, network or CLI crates)" >&2
  exit 1
fi

echo "== cargo test"
cargo test --workspace --all-targets
