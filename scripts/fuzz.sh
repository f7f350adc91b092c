#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz, cargo-fuzz on nightly) for FUZZ_SECS
# seconds each (default 20: the short run of make test; docs/hardening.md has
# the long one). The committed corpus seeds each run; what a run adds goes
# to a scratch directory (tests/fuzz/corpus-new/<target> with FUZZ_KEEP=1,
# to review and commit), so the tree stays clean. A crash fails the script
# and leaves its input in tests/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECS:-20}
TARGETS=${FUZZ_TARGETS:-"wire frame movelog config"}
cargo +nightly fuzz build --fuzz-dir tests/fuzz -O >/dev/null
rc=0
for t in $TARGETS; do
    if [ "${FUZZ_KEEP:-0}" = 1 ]; then
        new=tests/fuzz/corpus-new/$t; mkdir -p "$new"
    else
        new=$(mktemp -d /tmp/ih-fuzz-"$t".XXXXXX)
    fi
    log=$(mktemp /tmp/ih-fuzz-"$t"-log.XXXXXX)
    if cargo +nightly fuzz run --fuzz-dir tests/fuzz -O "$t" "$new" "tests/fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 >"$log" 2>&1; then
        echo "fuzz $t: $(grep -E '^Done' "$log" | tail -1), no crash"
    else
        echo "fuzz $t: FAILED"; grep -E 'panicked at|ERROR|SUMMARY' -A2 "$log" | head -20; rc=1
    fi
    rm -f "$log"
    [ "${FUZZ_KEEP:-0}" = 1 ] || rm -rf "$new"
done
exit $rc
