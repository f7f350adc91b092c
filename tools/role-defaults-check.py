#!/usr/bin/env python3
"""The Ansible role documents its defaults twice: in defaults/main.yml (what
applies) and in meta/argument_specs.yml (what `ansible-doc` and argument
validation show). Fails when an option's documented default differs from
the one that applies, or names an option the role does not have
(`make ansible-lint`, in `make test`)."""
import os
import sys

import yaml

ROLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ansible", "roles", "ironhoard")
defaults = yaml.safe_load(open(os.path.join(ROLE, "defaults", "main.yml"))) or {}
spec = yaml.safe_load(open(os.path.join(ROLE, "meta", "argument_specs.yml")))
options = spec["argument_specs"]["main"]["options"]
bad = []
for name, o in options.items():
    if "default" in o and name in defaults and o["default"] != defaults[name]:
        bad.append(f"{name}: argument_specs.yml says default {o['default']!r}, defaults/main.yml sets {defaults[name]!r}")
    if "default" in o and name not in defaults:
        bad.append(f"{name}: argument_specs.yml has a default ({o['default']!r}) that defaults/main.yml does not set")
for name in defaults:
    if name not in options:
        bad.append(f"{name}: set in defaults/main.yml, missing from argument_specs.yml")
if bad:
    print("role-defaults-check: FAILED", file=sys.stderr)
    for b in bad:
        print("  " + b, file=sys.stderr)
    sys.exit(1)
print(f"role-defaults-check: {len(options)} options, every documented default is the one that applies")
