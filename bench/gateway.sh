#!/usr/bin/env bash
# Footprint and speed of the static release binary: size, cold start, idle RSS, and
# /health throughput under wrk on loopback (10 s, 2 threads, 32 connections).
# Prints figures; never fails on a timing. Needs python3, and wrk for the load figure
# (`apt-get install wrk`).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
bin="${CARGO_TARGET_DIR:-target}/$target/release/skynet-gateway"
if [ "${1:-}" != "--no-build" ]; then
    cargo build --release --locked --target "$target" >&2
fi
[ -x "$bin" ] || { echo "bench: $bin is missing; build it first" >&2; exit 1; }

echo "binary: $bin ($(file -b "$bin" | cut -d, -f1-2))"
echo "static binary size: $(stat -c %s "$bin") bytes ($(awk "BEGIN {printf \"%.2f\", $(stat -c %s "$bin")/1048576}") MiB)"
python3 bench/startup.py "$bin"

if command -v wrk >/dev/null; then
    home="$(mktemp -d)"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    SKYNET_HOME="$home" SKYNET_GATEWAY__AUTH_TOKEN=bench-token-0123456789abcdef \
        "$bin" run --port "$port" >/dev/null 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null; rm -rf "$home"' EXIT
    until curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1; do sleep 0.01; done
    wrk -t2 -c32 -d10s --latency "http://127.0.0.1:$port/health" \
        | awk '/Requests\/sec/ {print "/health throughput (wrk -t2 -c32 -d10s): " $2 " req/s"}
               /^ +50%/ {print "/health latency p50: " $2} /^ +99%/ {print "/health latency p99: " $2}'
    echo "RSS after the load: $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
else
    echo "wrk not installed; skipping the throughput figure (apt-get install wrk)"
fi
