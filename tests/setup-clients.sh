#!/usr/bin/env bash
# Installs what the client tests need, inside tests/clients (no root, nothing global):
# a Node >= 22 (the openclaw-node SDKs use Node's built-in WebSocket), fetched as the
# npm registry's `node-<platform>` binary package when the system Node is older, the
# pinned openclaw-node packages and Claude Code CLI (its native binary comes from the
# registry as an optional dependency) from package-lock.json, and a Python venv with the pinned
# official `openai` SDK and Playwright from requirements.txt. Playwright drives the
# system's Chromium (`apt-get install chromium`); it never downloads a browser of its own.
# Safe to run again.
set -euo pipefail

clients="$(cd "$(dirname "$0")" && pwd)/clients"
node_version=24.21.0

die() { echo "setup-clients: $*" >&2; exit 1; }
command -v npm >/dev/null || die "npm is missing: install Node.js and npm (any version) so the test clients can be fetched"

node_major() { "$1" --version 2>/dev/null | sed -n 's/^v\([0-9]*\).*/\1/p'; }

if [ "$(node_major "$clients/.node/bin/node")" != "" ]; then
    :
elif [ "$(node_major node)" != "" ] && [ "$(node_major node)" -ge 22 ]; then
    mkdir -p "$clients/.node/bin"
    ln -sf "$(command -v node)" "$clients/.node/bin/node"
else
    case "$(uname -s)-$(uname -m)" in
        Linux-x86_64) platform=linux-x64 ;;
        Linux-aarch64 | Linux-arm64) platform=linux-arm64 ;;
        Darwin-arm64) platform=darwin-arm64 ;;
        Darwin-x86_64) platform=darwin-x64 ;;
        *) die "no Node $node_version package for $(uname -sm); install Node >= 22 yourself" ;;
    esac
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "setup-clients: fetching Node $node_version (npm package node-$platform)"
    (cd "$tmp" && npm pack --silent "node-$platform@$node_version" >/dev/null)
    tar -xzf "$tmp"/node-*.tgz -C "$tmp"
    mkdir -p "$clients/.node"
    rm -rf "$clients/.node/bin"
    mv "$tmp/package/bin" "$clients/.node/bin"
fi
echo "setup-clients: node $("$clients/.node/bin/node" --version) at $clients/.node/bin/node"

if [ ! -d "$clients/node_modules/ocn3" ] || [ ! -d "$clients/node_modules/ocn4" ] \
    || [ ! -d "$clients/node_modules/@anthropic-ai/claude-code" ] \
    || [ "$clients/package-lock.json" -nt "$clients/node_modules/.package-lock.json" ]; then
    (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup-clients: openclaw-node 0.1.0 and 0.14.0 installed"
# The CLI's postinstall copies the native binary over a stub; an npm that skipped install
# scripts leaves the stub, so run it then (the package's own documented fix).
claude="$clients/node_modules/.bin/claude"
if ! "$claude" --version >/dev/null 2>&1; then
    (cd "$clients" && node node_modules/@anthropic-ai/claude-code/install.cjs)
fi
echo "setup-clients: Claude Code CLI $("$claude" --version)"

command -v python3 >/dev/null || die "python3 is missing: install Python 3.9+ with venv so the openai SDK test can run"
if [ ! -x "$clients/.venv/bin/python" ]; then
    python3 -m venv "$clients/.venv" || die "cannot create a venv: install python3-venv"
fi
if [ "$clients/requirements.txt" -nt "$clients/.venv/installed" ] || [ ! -f "$clients/.venv/installed" ]; then
    "$clients/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$clients/requirements.txt"
    touch "$clients/.venv/installed"
fi
echo "setup-clients: python openai $("$clients/.venv/bin/python" -c 'import openai; print(openai.__version__)')"
echo "setup-clients: python playwright $("$clients/.venv/bin/python" -c 'from importlib.metadata import version; print(version("playwright"))')"
[ -x /usr/bin/chromium ] || echo "setup-clients: warning: /usr/bin/chromium is missing; the web chat test needs it: apt-get install chromium" >&2
