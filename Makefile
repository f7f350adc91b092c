# IronHoard: two commands do everything on a fresh machine (as root):
#   make lab    build, make a veth/netns lab, run the appliance, send moves, report
#   make test   every test: unit, property, allocation, CLI, root/netns lab tests
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
# Ansible's scripts sit next to the python3 that setup.sh installs them into
PYBIN := $(shell python3 -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null)

.PHONY: all setup build release deb lint-deb test test-deploy ansible-lint fuzz structure unit lab bench lab-bench journey-bench clean

all: build

setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets
	bash scripts/go.sh build

release: setup
	$(CARGO) build --release --bins

# the Debian package, built with debhelper from packaging/debian/:
# target/deb/ironhoard_<version>_<arch>.deb and its -dbgsym package
deb: release
	bash scripts/build-deb.sh

# lintian on it: no error, no warning, no tag not in packaging/lintian-known-tags
lint-deb: deb
	bash scripts/lint-deb.sh

# every test: the workspace's (each in its own process with a time limit,
# .config/nextest.toml), the Go client's (go vet, go test, with a real
# nats-server), lintian on the Debian package, then the Ansible role's lint
# and its deployment onto a booted systemd scratch host
test: build release
	$(CARGO) nextest run --workspace --no-fail-fast; rc=$$?; bash scripts/sweep-labs.sh; \
	python3 tools/structure-check.py || rc=1; \
	python3 -m unittest bench/test_report.py || rc=1; \
	bash scripts/go.sh test || rc=1; \
	$(MAKE) --no-print-directory fuzz || rc=1; \
	$(MAKE) --no-print-directory lint-deb || rc=1; \
	$(MAKE) --no-print-directory test-deploy || rc=1; exit $$rc

# no import circle between a crate's files, no function over 80 lines outside tests
structure:
	python3 tools/structure-check.py

# every fuzz target for FUZZ_SECS (default 20) seconds; long runs: docs/hardening.md
fuzz: setup
	bash scripts/fuzz.sh

ansible-lint: setup
	$(PYBIN)/python3 tools/role-defaults-check.py
	cd ansible && $(PYBIN)/ansible-lint --profile production && \
	$(PYBIN)/ansible-playbook -i inventory/example/hosts.yml site.yml --syntax-check

# the role onto a scratch host booted with systemd-nspawn (tests/deploy/)
test-deploy: ansible-lint release
	bash tests/deploy/tune-test.sh
	bash tests/deploy/deploy-test.sh; rc=$$?; bash scripts/sweep-labs.sh; exit $$rc

# tests that need no root
unit:
	$(CARGO) test --workspace --exclude ironhoard-labtests
	$(CARGO) test -p ironhoard-labtests --test cli
	bash scripts/go.sh test

# the journey of a move to a game server (bench/README.md): writes
# bench/journey-results/
journey-bench: release
	$(CARGO) build --release -p ironhoard-game-server
	bash scripts/go.sh build
	bash bench/journey-bench.sh

lab: release
	bash scripts/lab-demo.sh

bench: setup
	taskset -c 1 $(CARGO) bench -p ironhoard-engine --bench engine

# socket, xdp, reflector and tokio side by side (bench/README.md): writes
# bench/results/ (results.json, results.md, SVG plots); knobs from the
# environment or the command line, e.g. make lab-bench SECONDS_PER_STEP=1 RUNS=3
lab-bench: release
	@if [ -f bench/contenders/Cargo.toml ]; then $(CARGO) build --release -p ironhoard-contenders; \
	else echo "bench/contenders not there: the reflector and tokio contenders will be skipped"; fi
	bash bench/lab-bench.sh

clean:
	$(CARGO) clean
