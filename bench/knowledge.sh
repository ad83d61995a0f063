#!/usr/bin/env bash
# Knowledge search p50/p99 over 100,000 documents, and the per-message memory lookup cost
# (memory summary + hot index) with 500 memories and 100,000 recorded tool calls, measured
# on the gateway's own store code (bench/knowledge_bench.rs, a release-built example).
# Prints figures; never fails on a timing.
# Usage: bench/knowledge.sh [documents] [memories] [tool_calls]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --locked --quiet --example knowledge_bench -- "$@"
