#!/bin/sh
# Builds the release binaries and writes the assets that `skynet-gateway update` and
# install.sh download:
#
#   dist/skynet-gateway-<target triple>.tar.gz   each holding one `skynet-gateway`
#   dist/SHA256SUMS                              their sums, in `sha256sum` format
#
# x86_64-unknown-linux-musl (the static Linux build) is required; every other target is
# built when its toolchain is installed and skipped, saying why, when it is not. A clean
# build takes about 12 minutes per target on 2 cores. Publish with
#   gh release create v<version> dist/*
#
# Environment:
#   SKYNET_RELEASE_TARGETS  targets to build (default: x86_64 and aarch64, Linux musl and macOS)
#   SKYNET_DIST_DIR         output directory (default: dist)
#   CARGO_TARGET_DIR        cargo's build directory (default: target)

set -eu
cd "$(dirname "$0")/.."

REQUIRED=x86_64-unknown-linux-musl
targets=${SKYNET_RELEASE_TARGETS:-"$REQUIRED aarch64-unknown-linux-musl x86_64-apple-darwin aarch64-apple-darwin"}
dist=${SKYNET_DIST_DIR:-dist}
build_dir=${CARGO_TARGET_DIR:-target}

say() {
    printf 'release: %s\n' "$*"
}

die() {
    printf 'release: error: %s\n' "$*" >&2
    exit 1
}

command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust with rustup (https://rustup.rs)"
command -v rustup >/dev/null 2>&1 || die "rustup is missing: it installs the targets to build for (https://rustup.rs)"
if command -v sha256sum >/dev/null 2>&1; then
    sha256="sha256sum"
elif command -v shasum >/dev/null 2>&1; then
    sha256="shasum -a 256"
else
    die "sha256sum (coreutils) or shasum is needed to write SHA256SUMS"
fi
installed=$(rustup target list --installed)
host_os=$(uname -s)
host_arch=$(uname -m)
case $host_arch in arm64) host_arch=aarch64 ;; esac

# Prints why target $1 cannot be built on this machine; prints nothing when it can, after
# pointing cargo at the C cross-compiler it needs (SQLite and ring have C parts).
cannot_build() {
    if ! printf '%s\n' "$installed" | grep -qx "$1"; then
        echo "the $1 target is not installed (rustup target add $1)"
        return
    fi
    case $1 in
        *-linux-musl)
            arch=${1%%-*}
            if [ "$arch" = "$host_arch" ] && [ "$host_os" = Linux ]; then
                command -v musl-gcc >/dev/null 2>&1 || echo "musl-gcc is missing (apt-get install musl-tools)"
            elif command -v "$arch-linux-musl-gcc" >/dev/null 2>&1; then
                var=$(printf '%s' "$1" | tr 'a-z-' 'A-Z_')
                export "CARGO_TARGET_${var}_LINKER=$arch-linux-musl-gcc"
                export "CC_$(printf '%s' "$1" | tr '-' '_')=$arch-linux-musl-gcc"
            else
                echo "no $arch-linux-musl-gcc cross-compiler on PATH"
            fi
            ;;
        *-apple-darwin)
            [ "$host_os" = Darwin ] || echo "macOS targets build only on macOS"
            ;;
    esac
}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
mkdir -p "$dist"
rm -f "$dist"/skynet-gateway-*.tar.gz "$dist/SHA256SUMS"

for target in $targets; do
    reason=$(cannot_build "$target")
    if [ -n "$reason" ]; then
        [ "$target" != "$REQUIRED" ] || die "cannot build $target, which every release needs: $reason"
        say "skipping $target: $reason"
        continue
    fi
    cannot_build "$target" >/dev/null # again outside $(...), so its exports reach cargo
    say "building $target"
    cargo build --release --locked --target "$target"
    # COPYFILE_DISABLE keeps macOS tar from adding ._ metadata files.
    COPYFILE_DISABLE=1 tar -C "$build_dir/$target/release" -czf "$dist/skynet-gateway-$target.tar.gz" skynet-gateway
done

(cd "$dist" && $sha256 skynet-gateway-*.tar.gz >SHA256SUMS)
say "release v$version, assets in $dist/:"
for file in "$dist"/skynet-gateway-*.tar.gz "$dist/SHA256SUMS"; do
    say "  $(basename "$file") ($(wc -c <"$file" | tr -d ' ') bytes)"
done
say "publish them with: gh release create v$version $dist/*"
