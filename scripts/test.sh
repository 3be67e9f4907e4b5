#!/usr/bin/env bash
# All of lmech's tests, as the README's test command: the Rust crate's
# (cargo test --release), then the Python package's (scripts/python-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release
scripts/python-test.sh
