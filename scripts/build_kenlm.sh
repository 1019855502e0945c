#!/usr/bin/env bash
# Build KenLM's estimator (lmplz) and build_binary into BIN_DIR (default .venv/bin).
# No wheel ships them: build from the kenlm source distribution on PyPI with
# Debian's boost and cmake. Idempotent: does nothing when both exist.
set -euo pipefail
BIN_DIR=${1:-.venv/bin}
PY=${PY:-.venv/bin/python}
KENLM_VERSION=${KENLM_VERSION:-0.3.0}
if [ -x "$BIN_DIR/lmplz" ] && [ -x "$BIN_DIR/build_binary" ]; then exit 0; fi

packages="cmake g++ libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download -q --no-deps --no-build-isolation --no-binary kenlm "kenlm==$KENLM_VERSION" -d "$work"
tar -xzf "$work"/kenlm-*.tar.gz -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'kenlm-*' | head -1)
log="$work/build.log"
echo "building KenLM's lmplz and build_binary (about 30 s)"
{ cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  && cmake --build "$work/build" --target lmplz build_binary -j "$(nproc)"; } >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
mkdir -p "$BIN_DIR"
cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$BIN_DIR/"
echo "built lmplz and build_binary into $BIN_DIR"
