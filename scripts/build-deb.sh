#!/usr/bin/env bash
# make deb: builds target/deb/ironhoard_<version>_<arch>.deb with dpkg-deb
# from the release binaries (stripped), the systemd unit, the maintainer
# scripts in packaging/debian/, the tuning helper and the example config.
# IH_DEB_VERSION overrides the version (default: the workspace version).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${IH_DEB_VERSION:-$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)}
ARCH=$(dpkg --print-architecture)
for b in ironhoard ironhoard-pktgen; do
    [ -x "target/release/$b" ] || { echo "build-deb: target/release/$b missing: run make release" >&2; exit 1; }
done

OUT=target/deb
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/ih-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
R=$STAGE/root
install -d "$R/DEBIAN" "$R/usr/bin" "$R/lib/systemd/system" "$R/usr/libexec/ironhoard" "$R/usr/share/doc/ironhoard"
for b in ironhoard ironhoard-pktgen; do
    objcopy --strip-debug "target/release/$b" "$R/usr/bin/$b"
    chmod 755 "$R/usr/bin/$b"
done
install -m 644 packaging/systemd/ironhoard.service "$R/lib/systemd/system/ironhoard.service"
install -m 644 packaging/systemd/ironhoard-ship.service "$R/lib/systemd/system/ironhoard-ship.service"
install -m 755 packaging/libexec/ironhoard-tune "$R/usr/libexec/ironhoard/ironhoard-tune"
install -m 644 config/ironhoard.example.toml "$R/usr/share/doc/ironhoard/ironhoard.example.toml"
install -d "$R/usr/share/doc/ironhoard/examples"
install -m 644 examples/consumer.py "$R/usr/share/doc/ironhoard/examples/consumer.py"
install -m 644 ansible/roles/ironhoard/files/grafana-ironhoard.json "$R/usr/share/doc/ironhoard/grafana-ironhoard.json"
install -m 644 README.md "$R/usr/share/doc/ironhoard/README.md"
for d in operations movelog protocol shipping; do install -m 644 "docs/$d.md" "$R/usr/share/doc/ironhoard/$d.md"; done
cat > "$R/usr/share/doc/ironhoard/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ironhoard
Files: *
License: Apache-2.0
COPY
for s in postinst prerm postrm; do install -m 755 "packaging/debian/$s" "$R/DEBIAN/$s"; done
SIZE=$(du -sk --exclude=DEBIAN "$R" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" packaging/debian/control.in > "$R/DEBIAN/control"
mkdir -p "$OUT"
DEB="$OUT/ironhoard_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$R" "$DEB" >/dev/null
echo "$DEB"
