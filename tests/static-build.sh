#!/usr/bin/env bash
# Builds the release binary for x86_64-unknown-linux-musl and checks that it is fully
# static (no dynamic loader, no shared libraries) and runs. Needs the musl target
# (`rustup target add x86_64-unknown-linux-musl`) and musl-gcc (`apt-get install musl-tools`)
# for the C parts (SQLite); .ci/run installs both.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
die() { echo "static-build: $*" >&2; exit 1; }
rustup target list --installed 2>/dev/null | grep -qx "$target" \
    || die "the $target target is missing: run \`rustup target add $target\`"
command -v musl-gcc >/dev/null || die "musl-gcc is missing: run \`apt-get install musl-tools\` (Debian/Ubuntu)"
command -v file >/dev/null || die "the \`file\` command is missing: run \`apt-get install file\`"

cargo build --release --locked --target "$target"
bin="${CARGO_TARGET_DIR:-target}/$target/release/skynet-gateway"
kind="$(file -b "$bin")"
echo "static-build: $bin: $kind"
case "$kind" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) die "the binary is not statically linked" ;;
esac
case "$kind" in *"interpreter"*) die "the binary asks for a dynamic loader" ;; esac
version="$("$bin" --version)"
[ "$version" = "skynet-gateway $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)" ] \
    || die "the static binary does not run: got '$version'"
echo "static-build: ok ($version, $(stat -c %s "$bin") bytes)"
