#!/usr/bin/env bash
# make deb: builds target/deb/ironhoard_<version>_<arch>.deb (and its
# ironhoard-dbgsym package) the Debian way, and prints the .deb's path.
#
# cargo has built the release binaries already (make release: the nightly
# toolchain and bpf-linker the XDP program needs, and the workspace's own
# target directory, which dpkg-buildpackage's environment would otherwise
# rebuild from scratch). This script stages them, the docs and examples,
# beside a copy of packaging/debian/ in target/deb/build/ironhoard-<version>/
# and runs dpkg-buildpackage -b there: debhelper (dh, compat 13) renders the
# man pages and completions from the binaries' clap definitions, installs
# the units with dh_installsystemd, strips into -dbgsym, and so on
# (packaging/debian/rules).
#
# The version is debian/changelog's, which must equal Cargo.toml's workspace
# version. IH_DEB_VERSION=V builds a test package of the same code as
# version V (the deployment test's upgrade): a changelog entry saying so is
# added to the staged copy only.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-deb: $*" >&2; exit 1; }
CARGO_VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
CHANGELOG_VERSION=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
[ "$CHANGELOG_VERSION" = "$CARGO_VERSION" ] ||
    die "packaging/debian/changelog's version $CHANGELOG_VERSION differs from Cargo.toml's workspace version $CARGO_VERSION: add a changelog entry"
VERSION=${IH_DEB_VERSION:-$CARGO_VERSION}
for b in ironhoard ironhoard-pktgen ironhoard-docgen; do
    [ -x "target/release/$b" ] || die "target/release/$b missing: run make release"
done
command -v dh >/dev/null && command -v dpkg-buildpackage >/dev/null || die "debhelper missing: run make setup"

OUT=target/deb
BUILD=$OUT/build
rm -rf "$BUILD"
SRC=$BUILD/ironhoard-$VERSION
mkdir -p "$SRC/stage/bin" "$SRC/stage/libexec" "$SRC/stage/doc" "$SRC/stage/examples"
cp -r packaging/debian "$SRC/debian"
for b in ironhoard ironhoard-pktgen ironhoard-docgen; do
    cp "target/release/$b" "$SRC/stage/bin/$b"
done
cp packaging/libexec/ironhoard-tune "$SRC/stage/libexec/"
cp README.md docs/operations.md docs/movelog.md docs/protocol.md docs/shipping.md "$SRC/stage/doc/"
cp config/ironhoard.example.toml examples/consumer.py ansible/roles/ironhoard/files/grafana-ironhoard.json "$SRC/stage/examples/"
if [ "$VERSION" != "$CHANGELOG_VERSION" ]; then
    {
        echo "ironhoard ($VERSION) unstable; urgency=medium"
        echo
        echo "  * Test build of $CHANGELOG_VERSION's code as $VERSION (IH_DEB_VERSION), for the"
        echo "    upgrade path of the deployment test."
        echo
        echo " -- IronHoard developers <ironhoard@example.invalid>  $(date -R)"
        echo
        cat packaging/debian/changelog
    } > "$SRC/debian/changelog"
fi

LOG=$OUT/build-$VERSION.log
mkdir -p "$OUT"
if ! (cd "$SRC" && dpkg-buildpackage -b --no-sign) >"$LOG" 2>&1; then
    tail -40 "$LOG" >&2
    die "dpkg-buildpackage failed in $SRC (whole log: $LOG)"
fi
ARCH=$(dpkg --print-architecture)
DEB=$OUT/ironhoard_${VERSION}_${ARCH}.deb
mv "$BUILD/ironhoard_${VERSION}_${ARCH}.deb" "$DEB"
mv "$BUILD/ironhoard-dbgsym_${VERSION}_${ARCH}.deb" "$OUT/"
mv "$BUILD/ironhoard_${VERSION}_${ARCH}.changes" "$BUILD/ironhoard_${VERSION}_${ARCH}.buildinfo" "$OUT/"
echo "$DEB"
