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

echo "== test peers: pymodbus, PyNaCl, pyftpdlib (with pyOpenSSL), python-snap7, l5x, blark, cpppo, pycomm3, asyncua, o6 (open62541) in .venv; Debian's zstd, OpenSSH sshd, vsftpd, tcpdump, tshark, Go with golang.org/x/mod, faketime, rclone, curl, openssl, chromium with chromedriver; Garage (cached build)"
PYMODBUS_VERSION=3.16.1
SNAP7_VERSION=3.3.0
# Outside inventories for the structured diffs: the `l5x` package (L5X) and blark (TwinCAT).
L5X_VERSION=1.7
BLARK_VERSION=0.8.3
PYNACL_VERSION=1.6.2
PYFTPDLIB_VERSION=2.2.0
PYOPENSSL_VERSION=26.4.0
# EtherNet/IP peers: cpppo's Logix simulator (server) and pycomm3 (client).
CPPPO_VERSION=5.2.5
PYCOMM3_VERSION=1.2.16
# The OPC UA peers: asyncua's server, and open62541's through its Python binding o6
# (script mode: free to use, each server process stops itself after 10 minutes).
ASYNCUA_VERSION=2.1.0
O6_VERSION=2.2.0
if ! .venv/bin/python -c "import pymodbus, nacl, pyftpdlib, OpenSSL, snap7, sys; from importlib.metadata import version; sys.exit(pymodbus.__version__ != '$PYMODBUS_VERSION' or nacl.__version__ != '$PYNACL_VERSION' or pyftpdlib.__ver__ != '$PYFTPDLIB_VERSION' or OpenSSL.__version__ != '$PYOPENSSL_VERSION' or version('python-snap7') != '$SNAP7_VERSION' or version('l5x') != '$L5X_VERSION' or version('blark') != '$BLARK_VERSION' or version('cpppo') != '$CPPPO_VERSION' or version('pycomm3') != '$PYCOMM3_VERSION' or version('asyncua') != '$ASYNCUA_VERSION' or version('o6') != '$O6_VERSION')" 2>/dev/null; then
  if ! python3 -m venv .venv 2>/dev/null; then
    echo "python3 -m venv failed; installing Debian's python3-venv" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv .venv
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check "pymodbus==$PYMODBUS_VERSION" "pynacl==$PYNACL_VERSION" "pyftpdlib==$PYFTPDLIB_VERSION" "pyopenssl==$PYOPENSSL_VERSION" "python-snap7==$SNAP7_VERSION" "l5x==$L5X_VERSION" "blark==$BLARK_VERSION" "cpppo==$CPPPO_VERSION" "pycomm3==$PYCOMM3_VERSION" "asyncua==$ASYNCUA_VERSION" "o6==$O6_VERSION"
fi
.venv/bin/python -c "import pymodbus, nacl, pyftpdlib, OpenSSL; from importlib.metadata import version; print('pymodbus', pymodbus.__version__, '· PyNaCl', nacl.__version__, '· pyftpdlib', pyftpdlib.__ver__, '· pyOpenSSL', OpenSSL.__version__, '· python-snap7', version('python-snap7'), '· l5x', version('l5x'), '· blark', version('blark'), '· cpppo', version('cpppo'), '· pycomm3', version('pycomm3'), '· asyncua', version('asyncua'), '· o6 (open62541)', version('o6'))"
# The independent format verifier (tests/verify_format.py) decompresses with zstd's CLI.
if ! command -v zstd >/dev/null 2>&1; then
  echo "installing Debian's zstd" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd >/dev/null
fi
zstd --version
# SFTP tests run OpenSSH's sshd and sftp-server; the second FTP peer is vsftpd.
missing=""
[ -x /usr/sbin/sshd ] && [ -x /usr/lib/openssh/sftp-server ] || missing="$missing openssh-server"
[ -x /usr/sbin/vsftpd ] || missing="$missing vsftpd"
command -v ssh-keygen >/dev/null 2>&1 || missing="$missing openssh-client"
# The wire recorder nobody here wrote: a loopback capture decoded by Wireshark's dissectors.
command -v tcpdump >/dev/null 2>&1 || missing="$missing tcpdump"
command -v tshark >/dev/null 2>&1 || missing="$missing tshark"
# The transparency-log checker nobody here wrote: Go's sumdb note and tlog packages.
command -v go >/dev/null 2>&1 || missing="$missing golang-go"
[ -f /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog/tlog.go ] || missing="$missing golang-golang-x-mod-dev"
# Retention tests date their nights in the past with libfaketime; the object-store tests
# damage the bucket with rclone.
command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
command -v rclone >/dev/null 2>&1 || missing="$missing rclone"
# The store's check of a signed payload is tried with curl's own SigV4 signing.
command -v curl >/dev/null 2>&1 || missing="$missing curl"
# The dashboard's tests: a TLS certificate made with openssl, pages driven in Debian's
# headless Chromium through chromedriver (WebDriver).
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
# The package's units are scored by systemd-analyze security.
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
if [ -n "$missing" ]; then
  echo "installing Debian's$missing" >&2
  # shellcheck disable=SC2086
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
/usr/sbin/sshd -V 2>&1 | head -1 || true
/usr/sbin/vsftpd -v 0>&1 2>&1 | head -1 || true
tshark --version 2>/dev/null | head -1 || true
go version 2>/dev/null || true

# The S3-compatible store of the push tests: Garage, built once from crates.io (about 9
# minutes on this machine) and cached outside the work tree.
GARAGE_VERSION=2.5.0
GARAGE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/plcvault/garage-$GARAGE_VERSION"
if [ ! -x "$GARAGE_ROOT/bin/garage" ]; then
  echo "building Garage $GARAGE_VERSION into $GARAGE_ROOT (once)" >&2
  CARGO_TARGET_DIR="$GARAGE_ROOT.build" cargo install --quiet garage --version "$GARAGE_VERSION" --locked \
    --no-default-features --features sqlite,bundled-libs --root "$GARAGE_ROOT"
  rm -rf "$GARAGE_ROOT.build"
fi
export PLCVAULT_GARAGE="$GARAGE_ROOT/bin/garage"
"$PLCVAULT_GARAGE" --version 2>/dev/null | head -1 || true
rclone version 2>/dev/null | head -1 || true

echo "   ($SECONDS s so far)"
echo "== cargo fmt --check"
cargo fmt --all --check

echo "   ($SECONDS s so far)"
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "   ($SECONDS s so far)"
echo "== the vault crate stays synchronous and offline"
forbidden=$(cargo tree -p vault -e normal --prefix none | awk '{print $1}' | grep -xE 'tokio|mio|socket2|clap|reqwest|hyper|tokio-modbus' | sort -u || true)
if [ -n "$forbidden" ]; then
  echo "vault depends on: $forbidden (it must have no async runtime, network or CLI crates)" >&2
  exit 1
fi

echo "   ($SECONDS s so far)"
echo "== cargo test"
cargo test --workspace --all-targets
echo "== done in $((SECONDS / 60)) min $((SECONDS % 60)) s"
