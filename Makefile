# IronHoard: two commands do everything on a fresh machine (as root):
#   make lab    build, make a veth/netns lab, run the appliance, send moves, report
#   make test   every test: unit, property, allocation, CLI, root/netns lab tests
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: all setup build release test unit lab bench lab-bench clean

all: build

setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets

release: setup
	$(CARGO) build --release --bins

# every test, each in its own process with a time limit (.config/nextest.toml)
test: build
	$(CARGO) nextest run --workspace --no-fail-fast; rc=$$?; bash scripts/sweep-labs.sh; exit $$rc

# tests that need no root
unit:
	$(CARGO) test --workspace --exclude ironhoard-labtests
	$(CARGO) test -p ironhoard-labtests --test cli

lab: release
	bash scripts/lab-demo.sh

bench: setup
	taskset -c 1 $(CARGO) bench -p ironhoard-engine --bench engine

lab-bench: release
	bash bench/lab-bench.sh

clean:
	$(CARGO) clean
