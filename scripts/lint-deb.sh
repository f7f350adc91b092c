#!/usr/bin/env bash
# make lint-deb (part of make test): lintian on the packages make deb built
# (the .changes: ironhoard and ironhoard-dbgsym), pedantic and informational
# tags included. Fails on any error or warning, and on any tag not listed in
# packaging/lintian-known-tags (each listed there with why it is right).
# Also checks that the -dbgsym package holds the debug info of the stripped
# binaries, by build id.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "lint-deb: $*" >&2; exit 1; }

VERSION=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
ARCH=$(dpkg --print-architecture)
CHANGES=target/deb/ironhoard_${VERSION}_${ARCH}.changes
DEB=target/deb/ironhoard_${VERSION}_${ARCH}.deb
DBG=target/deb/ironhoard-dbgsym_${VERSION}_${ARCH}.deb
for f in "$CHANGES" "$DEB" "$DBG"; do [ -f "$f" ] || die "$f missing: run make deb"; done

OUT=$(mktemp -d "${TMPDIR:-/tmp}/ih-lint.XXXXXX")
chmod 755 "$OUT"
trap 'rm -rf "$OUT"' EXIT
# lintian warns when run as root: it runs as nobody, on copies in a
# directory nobody can read (the checkout may be in one it cannot)
mkdir "$OUT/pkg"
cp "$CHANGES" "$DEB" "$DBG" "target/deb/ironhoard_${VERSION}_${ARCH}.buildinfo" "$OUT/pkg/"
chmod -R a+rX "$OUT/pkg"
as=(); [ "$(id -u)" = 0 ] && as=(runuser -u nobody --)
rc=0
(cd "$OUT/pkg" && "${as[@]}" lintian --pedantic --display-info --tag-display-limit 0 "$(basename "$CHANGES")") >"$OUT/lintian.txt" 2>&1 || rc=$?
cat "$OUT/lintian.txt"
# lintian exits non-zero on errors (and when it cannot run): tags decide below
grep -qE '^[EWIPXO]: ' "$OUT/lintian.txt" || [ $rc = 0 ] || die "lintian failed (exit $rc)"

awk '/^[EWIPX]: /{print $1, $2, $3}' "$OUT/lintian.txt" | sort -u >"$OUT/got"
grep -vE '^(#|$)' packaging/lintian-known-tags | sort -u >"$OUT/known"
if grep -qvE '^[IP]: ' "$OUT/known"; then die "packaging/lintian-known-tags may list only I: and P: tags"; fi
fail=0
if grep -E '^[EW]: ' "$OUT/got" >"$OUT/bad"; then
    echo "lint-deb: lintian errors and warnings:" >&2; sed 's/^/  /' "$OUT/bad" >&2; fail=1
fi
if comm -23 "$OUT/got" "$OUT/known" | grep -vE '^[EW]: ' >"$OUT/new"; then
    echo "lint-deb: tags not in packaging/lintian-known-tags (fix them, or list them there with why):" >&2
    sed 's/^/  /' "$OUT/new" >&2; fail=1
fi
if comm -13 "$OUT/got" "$OUT/known" | grep . >"$OUT/gone"; then
    echo "lint-deb: no longer reported (may be taken out of packaging/lintian-known-tags):"; sed 's/^/  /' "$OUT/gone"
fi

# the dbgsym package has each binary's debug info, under its build id
mkdir "$OUT/deb" "$OUT/dbg"
dpkg-deb -x "$DEB" "$OUT/deb"
dpkg-deb -x "$DBG" "$OUT/dbg"
for b in ironhoard ironhoard-pktgen; do
    id=$(readelf -n "$OUT/deb/usr/bin/$b" 2>/dev/null | awk '/Build ID:/{print $3}')
    [ -n "$id" ] || { echo "lint-deb: /usr/bin/$b has no build id" >&2; fail=1; continue; }
    dbg="$OUT/dbg/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
    if [ ! -s "$dbg" ] || ! readelf -S "$dbg" 2>/dev/null | grep -q '\.debug_line'; then
        echo "lint-deb: ironhoard-dbgsym lacks /usr/bin/$b's debug info (build id $id)" >&2; fail=1
    fi
    if readelf -S "$OUT/deb/usr/bin/$b" 2>/dev/null | grep -qE '\.debug_(info|line|str|abbrev)'; then
        echo "lint-deb: /usr/bin/$b still carries debug sections" >&2; fail=1
    fi
done
[ $fail = 0 ] || die "FAIL"
echo "lint-deb: PASS ($(wc -l <"$OUT/got") tag(s), all known; debug info in ironhoard-dbgsym by build id)"
