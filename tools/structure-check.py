#!/usr/bin/env python3
"""The codebase's shape, checked (`make structure`, part of `make test`).

1. No import circle between the files of a crate: for every crate under
   userspace/, bench/contenders and xdp-prog, the graph of `crate::<module>`
   references between its top-level source files has no cycle.
2. No function over MAX_LINES lines outside test code in those crates (a
   function whose steps have names reads like the poller loop; a test may
   be a long scenario).

It reads the sources as text: a `crate::m` mention in a comment does not
count, one in a string would. Exits 1 with what it found, else prints a
one-line summary.
"""
import os
import re
import sys

MAX_LINES = 80
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CRATES = sorted(
    [os.path.join("userspace", d, "src") for d in os.listdir(os.path.join(ROOT, "userspace"))]
    + [os.path.join("bench", "contenders", "src"), os.path.join("xdp-prog", "src")]
)


def strip_comments(text):
    return re.sub(r"//[^\n]*", "", text)


def modules(src_dir):
    """Top-level modules of a crate: file stem -> text (a dir/mod.rs counts as the dir)."""
    out = {}
    for f in sorted(os.listdir(src_dir)):
        p = os.path.join(src_dir, f)
        if f.endswith(".rs"):
            out[f[:-3]] = open(p).read()
        elif os.path.isdir(p) and os.path.exists(os.path.join(p, "mod.rs")):
            out[f] = "\n".join(open(os.path.join(p, g)).read() for g in sorted(os.listdir(p)) if g.endswith(".rs"))
    return out


def cycles(mods):
    deps = {m: set() for m in mods}
    for m, text in mods.items():
        t = strip_comments(text)
        for r in re.findall(r"crate::(\w+)", t):
            if r in mods and r != m:
                deps[m].add(r)
        for group in re.findall(r"use crate::\{([^}]*)\}", t):
            for r in re.findall(r"(\w+)", group):
                if r in mods and r != m:
                    deps[m].add(r)
    # Tarjan's strongly connected components
    index, low, stack, on, found, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(deps[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append({m: sorted(deps[m] & set(comp)) for m in sorted(comp)})

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return found


FN = re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)", re.M)


def body_end(src, i):
    """Index of the `}` closing the block that opens at src[i] == '{'."""
    depth, j, n = 0, i, len(src)
    while j < n:
        c = src[j]
        if src.startswith("//", j):
            j = src.find("\n", j)
            if j < 0:
                return n
            continue
        if c == '"':
            j += 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
        elif c == "'" and j + 2 < n and (src[j + 2] == "'" or src[j + 1] == "\\"):
            j = src.find("'", j + (3 if src[j + 1] == "\\" else 2))
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return n


def long_functions(path):
    src = open(path).read()
    if os.path.basename(path) == "tests.rs":
        return []
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests", src)
    test_from = m.start() if m else len(src)
    out = []
    for f in FN.finditer(src):
        if f.start() >= test_from:
            continue
        i, semi = src.find("{", f.end()), src.find(";", f.end())
        if i < 0 or (0 <= semi < i):
            continue  # a declaration without a body
        j = body_end(src, i)
        first, last = src.count("\n", 0, f.start()) + 1, src.count("\n", 0, j) + 1
        if last - first + 1 > MAX_LINES:
            out.append((last - first + 1, first, f.group(1)))
    return out


def main():
    problems = []
    files = 0
    for crate in CRATES:
        d = os.path.join(ROOT, crate)
        if not os.path.isdir(d):
            continue
        for c in cycles(modules(d)):
            problems.append(f"{crate}: import circle between files: {c}")
        for dp, _, fs in os.walk(d):
            for f in sorted(fs):
                if f.endswith(".rs"):
                    files += 1
                    p = os.path.join(dp, f)
                    for lines, line, name in long_functions(p):
                        problems.append(f"{os.path.relpath(p, ROOT)}:{line}: fn {name} is {lines} lines (at most {MAX_LINES})")
    if problems:
        print("structure-check: FAILED", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        sys.exit(1)
    print(f"structure-check: {len(CRATES)} crates, {files} files: no import circle between files, no function over {MAX_LINES} lines outside tests")


if __name__ == "__main__":
    main()
