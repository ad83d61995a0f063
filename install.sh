#!/bin/sh
# Installs skynet-gateway, the Skynet AI gateway:
#
#   curl -fsSL https://raw.githubusercontent.com/skynet-gateway/skynet/main/install.sh | sh
#
# It detects the platform, downloads the release asset skynet-gateway-<target>.tar.gz and
# the release's SHA256SUMS, refuses anything whose checksum does not match, and installs
# the binary into ~/.local/bin. When no release build fits this machine (or when asked to),
# it builds from source with `cargo install` instead, if cargo is there. It never edits a
# shell profile: when that directory is not on PATH it prints the line to add. Then, on a
# terminal, it offers `skynet-gateway setup`.
#
# Environment:
#   SKYNET_VERSION           the release to install, e.g. 0.2.0 (default: the latest)
#   SKYNET_INSTALL_DIR       where the binary goes (default: ~/.local/bin)
#   SKYNET_INSTALL_BASE_URL  where releases are downloaded from
#                            (default: https://github.com/skynet-gateway/skynet/releases)
#   SKYNET_INSTALL_FROM_SOURCE=1  build from source with cargo even when a release fits
#   SKYNET_SOURCE_URL        the git repository (or a local source directory) to build from
#                            (default: https://github.com/skynet-gateway/skynet)
#   SKYNET_NO_SETUP=1        do not offer to run `skynet-gateway setup`
#
# Everything runs from the last line, so a download cut short executes nothing.

set -eu

BIN=skynet-gateway
DEFAULT_BASE_URL=https://github.com/skynet-gateway/skynet/releases
DEFAULT_SOURCE_URL=https://github.com/skynet-gateway/skynet

say() {
    printf 'skynet-install: %s\n' "$*"
}

err() {
    printf 'skynet-install: error: %s\n' "$*" >&2
    exit 1
}

# The release target triple for this machine (Linux releases are static musl binaries), or
# nothing when releases are not built for it.
detect_target() {
    arch=$(uname -m)
    case $arch in
        x86_64 | amd64) arch=x86_64 ;;
        aarch64 | arm64) arch=aarch64 ;;
        *) return 0 ;;
    esac
    case $(uname -s) in
        Linux) echo "$arch-unknown-linux-musl" ;;
        Darwin) echo "$arch-apple-darwin" ;;
    esac
}

# download URL FILE; fails with 22 when the server answered with an HTTP error (a 404: the
# release has no such file), with another status when it could not be reached.
download() {
    if command -v curl >/dev/null 2>&1; then
        case $1 in
            https://*) curl --proto '=https' --tlsv1.2 --fail --silent --show-error --location --output "$2" "$1" ;;
            *) curl --fail --silent --show-error --location --output "$2" "$1" ;;
        esac
    elif command -v wget >/dev/null 2>&1; then
        # wget says 8 for "the server issued an error response".
        wget --quiet --output-document="$2" "$1" || { status=$?; [ "$status" -eq 8 ] && return 22; return "$status"; }
    else
        err "neither curl nor wget is installed; install one of them and run this again"
    fi
}

# install_file BINARY DIR: copies next to the target, then renames, so a running gateway
# keeps its old file intact.
install_file() {
    mkdir -p "$2" 2>/dev/null || err "cannot create $2; set SKYNET_INSTALL_DIR to a directory you can write to"
    cp "$1" "$2/.$BIN.new.$$" 2>/dev/null \
        || err "cannot write to $2; set SKYNET_INSTALL_DIR to a directory you can write to"
    chmod 755 "$2/.$BIN.new.$$"
    mv -f "$2/.$BIN.new.$$" "$2/$BIN"
}

# build_from_source WHY: `cargo install` into a private root, then the binary into $dir.
build_from_source() {
    src=${SKYNET_SOURCE_URL:-$DEFAULT_SOURCE_URL}
    if ! command -v cargo >/dev/null 2>&1; then
        err "$1, and cargo is not installed to build it from source.
  Install Rust with rustup (https://rustup.rs):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
  then open a new shell (or run: . \"\$HOME/.cargo/env\") and run this installer again.
Nothing was installed."
    fi
    if [ -d "$src" ]; then
        set -- "$1" --path "$src"
    else
        set -- "$1" --git "$src"
        case $version in
            latest) ;;
            v*) set -- "$@" --tag "$version" ;;
            *) set -- "$@" --tag "v$version" ;;
        esac
        set -- "$@" "$BIN"
    fi
    why=$1
    shift
    root="$tmp/cargo-root"
    say "$why; building $BIN from source with cargo instead (this takes a few minutes)"
    say "running: cargo install --locked --root $root $*"
    cargo install --locked --root "$root" "$@" \
        || err "cargo install failed (see its messages above). Nothing was installed."
    [ -f "$root/bin/$BIN" ] || err "cargo install produced no $root/bin/$BIN. Nothing was installed."
    installed=$("$root/bin/$BIN" --version 2>/dev/null) \
        || err "the $BIN cargo built does not run. Nothing was installed."
    install_file "$root/bin/$BIN" "$dir"
    say "built from source and installed $installed as $dir/$BIN"
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d ' ' -f 1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d ' ' -f 1
    elif command -v openssl >/dev/null 2>&1; then
        openssl dgst -sha256 "$1" | sed 's/^.*= *//'
    else
        err "found no sha256sum, shasum or openssl to verify the download with; install one and run this again"
    fi
}

offer_setup() {
    if [ -z "${SKYNET_NO_SETUP:-}" ] && [ -t 1 ] && (: </dev/tty) 2>/dev/null; then
        printf 'skynet-install: run "%s setup" now to configure Skynet? [Y/n] ' "$1"
        read -r answer </dev/tty || answer=n
        case $answer in
            "" | y | Y | yes | Yes)
                "$1" setup </dev/tty || say "setup did not finish; run \"$1 setup\" when you are ready"
                return
                ;;
        esac
    fi
    say "next: run \"$1 setup\" to configure Skynet"
}

main() {
    target=$(detect_target)
    base=${SKYNET_INSTALL_BASE_URL:-$DEFAULT_BASE_URL}
    base=${base%/}
    version=${SKYNET_VERSION:-latest}
    case $version in
        latest) url="$base/latest/download" ;;
        v*) url="$base/download/$version" ;;
        *) url="$base/download/v$version" ;;
    esac
    dir=${SKYNET_INSTALL_DIR:-}
    if [ -z "$dir" ]; then
        [ -n "${HOME:-}" ] || err "HOME is not set; set SKYNET_INSTALL_DIR to the directory to install into"
        dir=$HOME/.local/bin
    fi

    tmp=$(mktemp -d 2>/dev/null || mktemp -d -t skynet-install)
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 130' INT TERM

    if [ -n "${SKYNET_INSTALL_FROM_SOURCE:-}" ]; then
        build_from_source "SKYNET_INSTALL_FROM_SOURCE is set"
        finish
        return
    fi
    if [ -z "$target" ]; then
        build_from_source "there are no release builds for this machine ($(uname -s) on $(uname -m))"
        finish
        return
    fi
    asset=$BIN-$target.tar.gz
    say "downloading $url/$asset"
    status=0
    download "$url/$asset" "$tmp/$asset" || status=$?
    if [ "$status" -eq 22 ]; then
        build_from_source "release $version has no build for $target ($url/$asset was not found)"
        finish
        return
    fi
    [ "$status" -eq 0 ] \
        || err "cannot download $url/$asset; check the network connection and run this again. Nothing was installed."
    download "$url/SHA256SUMS" "$tmp/SHA256SUMS" \
        || err "cannot download $url/SHA256SUMS; refusing to install without a checksum. Nothing was installed."
    expected=$(awk -v f="$asset" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/SHA256SUMS")
    [ -n "$expected" ] \
        || err "SHA256SUMS has no line for $asset; refusing to install an unverified binary. Nothing was installed."
    actual=$(sha256_of "$tmp/$asset")
    [ "$actual" = "$expected" ] \
        || err "checksum mismatch for $asset (expected $expected, got $actual): the download is corrupt or was tampered with. Nothing was installed."
    say "checksum verified ($actual)"

    mkdir "$tmp/x"
    tar -xzf "$tmp/$asset" -C "$tmp/x" "$BIN" || err "$asset holds no $BIN. Nothing was installed."
    chmod 755 "$tmp/x/$BIN"
    installed=$("$tmp/x/$BIN" --version 2>/dev/null) \
        || err "the downloaded $BIN does not run on this machine ($target). Nothing was installed."

    install_file "$tmp/x/$BIN" "$dir"
    say "installed $installed as $dir/$BIN"
    finish
}

# The PATH advice and the setup offer, after either kind of install.
finish() {
    case ":${PATH:-}:" in
        *":$dir:"*) ;;
        *)
            say "$dir is not on your PATH. This script does not edit shell profiles; to run $BIN by name,"
            say "add this line to your shell profile (~/.profile, ~/.bashrc or ~/.zshrc) and open a new shell:"
            printf "\n    export PATH=\"%s:\$PATH\"\n\n" "$dir"
            ;;
    esac
    offer_setup "$dir/$BIN"
}

main "$@"
