#!/usr/bin/env bash
# Builds the Debian package from this tree with dpkg-deb (no debhelper needed):
#
#   bash src/deb/build.sh [OUT_DIR] [BINARY]     (default target/debian, a release build)
#
# It installs the binary, the service account (systemd-sysusers, or useradd), the starter
# config /etc/plcvault/plcvault.toml (a conffile), this host's collector key (made by the
# postinst, once), the systemd units of this folder (none enabled), man pages and bash, zsh
# and fish completions generated from the CLI definition (`plcvault dist`). Prints the
# package's path. tests/packaging.rs builds it from the test binary and installs it into a
# scratch root with dpkg.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/target/debian}
bin=${2:-}
if [ -z "$bin" ]; then
  (cd "$top" && cargo build --release --locked --quiet)
  bin=$top/target/release/plcvault
fi
for tool in dpkg-deb dpkg readelf objdump gzip; do
  command -v "$tool" >/dev/null || { echo "build.sh needs $tool (Debian: apt-get install dpkg-dev binutils)" >&2; exit 2; }
done
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$top/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root/DEBIAN" "$out"

install -D -m 0755 "$bin" "$root/usr/bin/plcvault"
strip --strip-debug "$root/usr/bin/plcvault" 2>/dev/null || true
"$bin" -q dist "$stage/gen"
for u in "$here"/*.service "$here"/*.timer; do
  install -D -m 0644 "$u" "$root/usr/lib/systemd/system/$(basename "$u")"
done
install -D -m 0644 "$here/sysusers.conf" "$root/usr/lib/sysusers.d/plcvault.conf"
install -D -m 0644 "$stage/gen/plcvault.toml" "$root/etc/plcvault/plcvault.toml"
mkdir -p "$root/usr/share/man/man1"
for page in "$stage"/gen/man/*.1; do
  gzip -9n <"$page" >"$root/usr/share/man/man1/$(basename "$page").gz"
done
install -D -m 0644 "$stage/gen/completions/plcvault.bash" "$root/usr/share/bash-completion/completions/plcvault"
install -D -m 0644 "$stage/gen/completions/_plcvault" "$root/usr/share/zsh/vendor-completions/_plcvault"
install -D -m 0644 "$stage/gen/completions/plcvault.fish" "$root/usr/share/fish/vendor_completions.d/plcvault.fish"
doc=$root/usr/share/doc/plcvault
install -D -m 0644 "$top/config.example.toml" "$doc/examples/config.example.toml"
gzip -9n <"$top/README.md" >"$doc/README.md.gz"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: plcvault

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
chmod 0644 "$doc/copyright"
# Who built it: DEBFULLNAME and DEBEMAIL, as Debian's own tools take them.
maintainer="${DEBFULLNAME:-plcvault maintainers} <${DEBEMAIL:-plcvault@localhost}>"
# The changelog Debian asks for, dated by the tree's last commit (or SOURCE_DATE_EPOCH)
# so that the same tree builds the same package.
when=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
cat >"$stage/changelog" <<CHANGELOG
plcvault ($version-1) unstable; urgency=medium

  * Built from the plcvault source tree at commit $commit; the changes are
    in the project's history and README.

 -- $maintainer  $(LC_ALL=C date -u -R -d "@$when")
CHANGELOG
gzip -9n <"$stage/changelog" >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$root/DEBIAN/$s"; done
echo /etc/plcvault/plcvault.toml >"$root/DEBIAN/conffiles"

# What the binary links: libc6 (at least the newest glibc symbol version it uses) and
# libgcc-s1 when it needs the unwinder's library.
glibc=$(objdump -T "$root/usr/bin/plcvault" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
depends="libc6 (>= $glibc)"
for lib in $(readelf -d "$root/usr/bin/plcvault" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
  case $lib in
    libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux*) ;;
    libgcc_s.so.1) depends="$depends, libgcc-s1" ;;
    *) echo "build.sh: the binary links $lib, which has no package mapped here" >&2; exit 1 ;;
  esac
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
cat >"$root/DEBIAN/control" <<CONTROL
Package: plcvault
Version: $version-1
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Recommends: systemd
Section: admin
Priority: optional
Description: signed, verifiable backups and restore drills for PLCs and HMIs
 plcvault collects PLC programs, recipes held in controller registers and HMI
 images read-only over Modbus TCP, S7comm, EtherNet/IP, OPC UA, FTP/SFTP and
 files, stores them in a signed, content-addressed vault with a tamper-evident
 log, compares them with an approved baseline and proves that they restore.
CONTROL
deb=$out/plcvault_${version}-1_$arch.deb
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "$deb"
