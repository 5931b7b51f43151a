#!/usr/bin/env python3
"""Share of a process's CPU samples per component of the planner loop (issue #16).

Reads `perf script` output (a `perf record --call-graph dwarf` of the planner_loop bench)
on stdin and attributes each sample to the component of the innermost frame, walking from
the leaf towards the root, that belongs to one: a sample in `malloc` under `serde_json`
under `argent_store` counts for the store. A sample with no such frame counts for "agent
loop" if an `argent_agent`/`argent_core` frame is on its stack (the run's state, the
account's context, ids), else for "kernel" if its leaf is in the kernel (thread switches
and wake-ups, syscalls, page faults), else for "runtime / other" (tokio's scheduler, the
allocator, the bench itself).

    perf record -F 499 --call-graph dwarf,16384 -o perf.data -- <bench> --bench
    perf script -i perf.data --no-inline | python3 attribute.py

Components (first match in this order for a frame's symbol):
    policy      argent_policy
    validation  jsonschema, argent_tools
    rendering   handlebars, argent_agent::prompt, tiktoken
    model       argent_llm (the scripted model, or the OpenAI client), async_openai,
                reqwest, hyper, h2, rustls, the fake server
    store       argent_store, sqlx, sqlite3, libsqlite3, postgres (its audit hashing too)
"""

import collections
import re
import sys

RULES = [
    ("policy", re.compile(r"argent_policy")),
    ("validation", re.compile(r"jsonschema|argent_tools")),
    ("rendering", re.compile(r"handlebars|argent_agent::prompt|tiktoken")),
    ("model", re.compile(r"argent_llm|async_openai|reqwest|hyper|\bh2::|rustls|fake_openai|axum")),
    ("store", re.compile(r"argent_store|sqlx|sqlite3|libsqlite|postgres")),
]


LOOP = re.compile(r"argent_agent|argent_core")
KERNEL = re.compile(r"\[kernel\.kallsyms\]")


def classify(frames):
    for sym in frames:
        for name, pat in RULES:
            if pat.search(sym):
                return name
    if any(LOOP.search(f) for f in frames):
        return "agent loop"
    if frames and KERNEL.search(frames[0]):
        return "kernel"
    return "runtime / other"


def main():
    counts = collections.Counter()
    frames = []
    in_sample = False
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            if in_sample:
                counts[classify(frames)] += 1
            frames, in_sample = [], False
            continue
        if not line.startswith((" ", "\t")):
            in_sample = True  # the sample's header line
            continue
        frames.append(line.strip())
    if in_sample:
        counts[classify(frames)] += 1
    total = sum(counts.values()) or 1
    for name, n in counts.most_common():
        print(f"{name:<16} {n:>8} {100.0 * n / total:6.1f}%")
    print(f"{'total':<16} {total:>8}")


if __name__ == "__main__":
    main()
