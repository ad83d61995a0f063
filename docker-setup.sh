#!/bin/sh
# Skynet with Docker: writes packaging/skynet.env (a generated auth token, plus the model
# and provider keys you pass or export), builds the image, starts it with Docker Compose,
# waits until /health answers and prints where to connect. Safe to run again: the token
# and your own lines in skynet.env are kept.
#
#   ./docker-setup.sh [--model PROVIDER/MODEL] [--port N] [--no-build]
#   ./docker-setup.sh --down        # stop and remove the container (the data volume stays)
#
# Provider keys are taken from the environment when set: ANTHROPIC_API_KEY,
# OPENAI_API_KEY, OPENROUTER_API_KEY, GROQ_API_KEY, DEEPSEEK_API_KEY, MISTRAL_API_KEY,
# GEMINI_API_KEY, XAI_API_KEY. On a terminal, with no model and no key given and none in
# skynet.env yet, it asks for the model and its provider's key (typed hidden).
set -eu

cd "$(dirname "$0")"
compose_file=packaging/docker-compose.yml
env_file=packaging/skynet.env
port=18789
model="${SKYNET_MODEL:-}"
build=--build
down=no

die() {
    echo "docker-setup: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --model) [ $# -ge 2 ] || die "--model needs a value such as anthropic/claude-sonnet-4-5"; model="$2"; shift 2 ;;
        --port) [ $# -ge 2 ] || die "--port needs a number"; port="$2"; shift 2 ;;
        --no-build) build=""; shift ;;
        --down) down=yes; shift ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
case "$port" in
    '' | *[!0-9]*) die "--port must be a number, not '$port'" ;;
esac

command -v docker >/dev/null 2>&1 \
    || die "docker is not installed. Install Docker Engine (https://docs.docker.com/engine/install/) and run this again."
docker compose version >/dev/null 2>&1 \
    || die "the Docker Compose plugin is missing ('docker compose' does not work). Install docker-compose-plugin and run this again."

if [ "$down" = yes ]; then
    docker compose -f "$compose_file" down
    echo "Skynet's container is stopped and removed; its data volume (skynet-data) is kept."
    exit 0
fi

# Sets NAME=VALUE in the env file, replacing an existing line or appending one. The value
# goes through the environment, so awk leaves backslashes in it alone.
set_var() {
    SET_K="$1" SET_V="$2" awk '
        BEGIN { k = ENVIRON["SET_K"]; v = ENVIRON["SET_V"] }
        index($0, k "=") == 1 { print k "=" v; done = 1; next }
        { print }
        END { if (!done) print k "=" v }
    ' "$env_file" >"$env_file.tmp"
    mv "$env_file.tmp" "$env_file"
}

key_vars="ANTHROPIC_API_KEY OPENAI_API_KEY OPENROUTER_API_KEY GROQ_API_KEY DEEPSEEK_API_KEY
    MISTRAL_API_KEY GEMINI_API_KEY XAI_API_KEY"

# The environment variable holding the key of the provider in "provider/model", or nothing.
key_var_for() {
    case "${1%%/*}" in
        anthropic) echo ANTHROPIC_API_KEY ;;
        openai) echo OPENAI_API_KEY ;;
        openrouter) echo OPENROUTER_API_KEY ;;
        groq) echo GROQ_API_KEY ;;
        deepseek) echo DEEPSEEK_API_KEY ;;
        mistral) echo MISTRAL_API_KEY ;;
        gemini) echo GEMINI_API_KEY ;;
        xai) echo XAI_API_KEY ;;
    esac
}

# Whether to ask: a person at a terminal, and neither a model nor a key given or kept.
should_ask() {
    [ -t 0 ] || return 1
    [ -z "$model" ] || return 1
    for key in $key_vars; do
        eval "value=\${$key:-}"
        [ -z "$value" ] || return 1
    done
    ! grep -q '^SKYNET_AGENT__MODEL=' "$env_file" 2>/dev/null
}

# Reads a line into $hidden with echo off; the terminal is restored even on Ctrl-C.
read_hidden() {
    saved_tty="$(stty -g)"
    trap 'stty "$saved_tty"' EXIT
    trap 'echo; exit 130' INT TERM
    stty -echo
    IFS= read -r hidden || hidden=""
    stty "$saved_tty"
    trap - EXIT INT TERM
    echo
}

# Asks for the model and its provider's key.
ask() {
    echo "Which model should Skynet use? As provider/model, for example:"
    echo "  anthropic/claude-sonnet-4-5   openai/gpt-4o-mini      openrouter/anthropic/claude-sonnet-4.5"
    echo "  groq/llama-3.3-70b-versatile  deepseek/deepseek-chat  mistral/mistral-large-latest"
    echo "  gemini/gemini-2.5-flash       xai/grok-4              ollama/llama3.2"
    printf 'Model [anthropic/claude-sonnet-4-5]: '
    IFS= read -r answer || answer=""
    model="${answer:-anthropic/claude-sonnet-4-5}"
    case "$model" in
        ?*/?*) ;;
        *) die "'$model' is not provider/model (e.g. anthropic/claude-sonnet-4-5)" ;;
    esac
    key_var="$(key_var_for "$model")"
    if [ -z "$key_var" ]; then
        echo "docker-setup: no API key is asked for ${model%%/*}; add what it needs to $env_file."
        return 0
    fi
    printf '%s (input hidden, Enter to skip): ' "$key_var"
    read_hidden
    if [ -n "$hidden" ]; then
        eval "$key_var=\$hidden"
    else
        echo "docker-setup: no key given; add $key_var=... to $env_file later."
    fi
}

umask 077
if [ ! -f "$env_file" ]; then
    printf '# Settings for the Skynet container (written by docker-setup.sh, yours to edit).\n' >"$env_file"
fi
chmod 600 "$env_file"
token="$(sed -n 's/^SKYNET_GATEWAY__AUTH_TOKEN=//p' "$env_file" | head -n 1)"
if [ -z "$token" ]; then
    token="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
    [ ${#token} -eq 64 ] || die "could not generate a token from /dev/urandom"
    set_var SKYNET_GATEWAY__AUTH_TOKEN "$token"
fi
if should_ask; then
    ask
fi
if [ -n "$model" ]; then
    set_var SKYNET_AGENT__MODEL "$model"
fi
for key in $key_vars; do
    eval "value=\${$key:-}"
    if [ -n "$value" ]; then
        set_var "$key" "$value"
    fi
done

echo "docker-setup: starting Skynet (docker compose -f $compose_file up -d $build)"
# shellcheck disable=SC2086 # $build is empty or one flag
SKYNET_HOST_PORT="$port" docker compose -f "$compose_file" up -d $build

# From the host with curl, else with the binary's own check inside the container.
healthy() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1
    else
        docker compose -f "$compose_file" exec -T skynet /skynet-gateway health >/dev/null 2>&1
    fi
}

printf 'docker-setup: waiting for the gateway'
tries=0
until healthy; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo
        die "the gateway did not answer on 127.0.0.1:$port within 60 s. See: docker compose -f $compose_file logs"
    fi
    printf '.'
    sleep 1
done
echo

cat <<EOF
Skynet is running in Docker.
  WebSocket:   ws://127.0.0.1:$port/   (OpenClaw gateway protocol v3 and v4)
  OpenAI API:  http://127.0.0.1:$port/v1
  Auth token:  $token   (kept in $env_file)
  Logs:        docker compose -f $compose_file logs -f
  Stop:        ./docker-setup.sh --down
EOF
if ! grep -q '^SKYNET_AGENT__MODEL=' "$env_file"; then
    echo "No model is configured yet: run again with --model, e.g."
    echo "  ANTHROPIC_API_KEY=sk-ant-... ./docker-setup.sh --model anthropic/claude-sonnet-4-5"
fi
