#!/usr/bin/env bash
# Builds and tests the Go client (clients/go) and the example Go game server
# (examples/go-game-server) in GOPATH mode, offline, with the Go toolchain
# and nats.go that scripts/setup.sh installs from Debian (/usr/share/gocode).
#
#   bash scripts/go.sh test    go vet + go test -count=1 ./... on clients/go
#                              (and go vet on the example)
#   bash scripts/go.sh build   target/go/bin/ironhoard-go-game-server
#
# The integration test starts a nats-server: it is looked up in
# $IRONHOARD_NATS_SERVER, then on PATH, then in Python's scripts directory.
set -euo pipefail

usage() {
    echo "usage: bash scripts/go.sh test|build" >&2
    exit 2
}
[ $# -eq 1 ] || usage

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v go >/dev/null 2>&1; then
    echo "go.sh: the go toolchain is not installed (Go 1.19 and nats.go from Debian: run scripts/setup.sh)" >&2
    exit 1
fi
GOCODE=/usr/share/gocode
if [ ! -d "$GOCODE/src/github.com/nats-io/nats.go" ]; then
    echo "go.sh: nats.go is missing from $GOCODE (package golang-github-nats-io-go-nats-dev: run scripts/setup.sh)" >&2
    exit 1
fi

# GOPATH mode: the packages are reached through symlinks under target/gopath.
GOPATH_DIR="$ROOT/target/gopath"
PKG_ROOT="$GOPATH_DIR/src/github.com/ironhoard/ironhoard"
mkdir -p "$PKG_ROOT/clients" "$PKG_ROOT/examples" "$ROOT/target/go/bin" "$ROOT/target/go/cache"
ln -sfn "$ROOT/clients/go" "$PKG_ROOT/clients/go"
ln -sfn "$ROOT/examples/go-game-server" "$PKG_ROOT/examples/go-game-server"

export GO111MODULE=off
export GOPATH="$GOPATH_DIR:$GOCODE"
export GOCACHE="$ROOT/target/go/cache"
export GOFLAGS=
export GOPROXY=off
export GOTOOLCHAIN=local

CLIENT=github.com/ironhoard/ironhoard/clients/go
EXAMPLE=github.com/ironhoard/ironhoard/examples/go-game-server

case "$1" in
test)
    unformatted="$(gofmt -l "$ROOT/clients/go" "$ROOT/examples/go-game-server")"
    if [ -n "$unformatted" ]; then
        echo "go.sh: not gofmt'ed:" >&2
        echo "$unformatted" >&2
        exit 1
    fi
    cd "$PKG_ROOT/clients/go"
    go vet ./... "$EXAMPLE"
    go test -count=1 ./...
    ;;
build)
    go build -o "$ROOT/target/go/bin/ironhoard-go-game-server" "$EXAMPLE"
    echo "built $ROOT/target/go/bin/ironhoard-go-game-server"
    ;;
*)
    usage
    ;;
esac
