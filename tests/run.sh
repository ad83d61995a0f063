#!/usr/bin/env bash
# The whole test suite, exactly as README.md documents it and .ci/run runs it:
# fetch the third-party test clients, run every Rust test (unit and integration, which
# start the real binary), then check the static musl release build.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/setup-clients.sh
cargo test --workspace --locked
tests/static-build.sh
