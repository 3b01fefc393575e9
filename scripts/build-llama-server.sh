#!/usr/bin/env bash
# Build llama.cpp's C++ llama-server from the sources inside the pinned llama-cpp-python sdist
# and cache the binary. There is no prebuilt wheel for it; the build takes 10-15 minutes on
# 2 cores, so it happens once per machine and later runs reuse the cached binary.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE_DIR="${KEFU_CACHE_DIR:-$HOME/.cache/kefu}"
BIN="$CACHE_DIR/bin/llama-server-$LLAMA_CPP_PYTHON_VERSION"
PYTHON="${PYTHON:-python3}"

if [[ -x "$BIN" ]]; then
  echo "llama-server: cached at $BIN"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/kefu-llama-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "llama-server: building from llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sources (10-15 minutes on 2 cores)"
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
  "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$work"
tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
src="$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >"$work/cmake.log" 2>&1 \
  || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/build" --target llama-server -j "$(nproc)" >"$work/build.log" 2>&1 \
  || { tail -50 "$work/build.log"; exit 1; }
mkdir -p "$(dirname "$BIN")"
install -m 0755 "$work/build/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "llama-server: built $BIN"
