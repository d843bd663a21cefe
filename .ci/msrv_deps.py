#!/usr/bin/env python3
"""Reads `cargo metadata --format-version 1` on stdin and fails if any resolved dependency
declares a newer `rust-version` than the workspace's packages (which must all declare the same).

Only one toolchain is installed here, so this and clippy's incompatible_msrv lint are how .ci/run
checks the MSRV."""
import json
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
msrvs = {p["name"]: p.get("rust_version") for p in meta["packages"] if p["id"] in members}
if None in msrvs.values() or len(set(msrvs.values())) != 1:
    sys.exit(f"every workspace package must declare the same rust-version: {msrvs}")
msrv = next(iter(msrvs.values()))
resolved = {node["id"] for node in meta["resolve"]["nodes"]} - members
too_new = sorted(
    f"{p['name']} {p['version']} needs Rust {p['rust_version']}"
    for p in meta["packages"]
    if p["id"] in resolved and p.get("rust_version") and version(p["rust_version"]) > version(msrv)
)
if too_new:
    sys.exit(
        f"rust-version is {msrv}, but Cargo.lock has:\n  " + "\n  ".join(too_new)
        + "\n(`cargo update` picks compatible versions: the workspace uses resolver 3)"
    )
print(f"{len(resolved)} dependencies in Cargo.lock, none needs more than Rust {msrv}")
