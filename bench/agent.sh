#!/usr/bin/env bash
# Chat-path figures of the static release binary against a fake Anthropic server on
# loopback: the gateway's added latency from the provider's first text delta to the
# client's first delta event (idle, and while 50 other chats stream), and memory per
# concurrent streaming chat (200 at once). Prints figures; never fails on a timing.
# Needs python3 (with venv); puts the pinned websockets client (requirements.txt) into
# bench/.venv on first use. Other arguments go to agent.py (`--chats N`, `--load C`,
# `--concurrent M`, `--conns K`; see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
bin="${CARGO_TARGET_DIR:-target}/$target/release/skynet-gateway"
if [ "${1:-}" = "--no-build" ]; then
    shift
else
    cargo build --release --locked --target "$target" >&2
fi
[ -x "$bin" ] || { echo "bench: $bin is missing; build it first" >&2; exit 1; }

venv=bench/.venv
if ! cmp -s bench/requirements.txt "$venv/requirements.txt"; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt >&2
    cp bench/requirements.txt "$venv/requirements.txt"
fi

echo "binary: $bin"
exec timeout 900 "$venv/bin/python3" bench/agent.py "$bin" "$@"
