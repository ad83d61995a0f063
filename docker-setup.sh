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
# GEMINI_API_KEY, XAI_API_KEY.
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
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
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

# Sets NAME=VALUE in the env file, replacing an existing line or appending one.
set_var() {
    awk -v k="$1" -v v="$2" '
        index($0, k "=") == 1 { print k "=" v; done = 1; next }
        { print }
        END { if (!done) print k "=" v }
    ' "$env_file" >"$env_file.tmp"
    mv "$env_file.tmp" "$env_file"
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
if [ -n "$model" ]; then
    set_var SKYNET_AGENT__MODEL "$model"
fi
for key in ANTHROPIC_API_KEY OPENAI_API_KEY OPENROUTER_API_KEY GROQ_API_KEY DEEPSEEK_API_KEY \
    MISTRAL_API_KEY GEMINI_API_KEY XAI_API_KEY; do
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
