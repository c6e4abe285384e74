#!/usr/bin/env bash
# Installs what building llama.cpp through llama-cpp-sys-2 needs and a fresh Debian/Ubuntu
# machine may lack: cmake, a C/C++ compiler, and libclang for bindgen; and fontconfig with a
# font for the benchmark charts (plotters). With `vulkan`, also what
# its Vulkan backend needs: glslc, the Vulkan loader and headers, the SPIR-V headers, and Mesa's
# drivers (whose llvmpipe device lets a machine without a GPU run the GPU code path). With
# `docker`, Debian's Docker daemon and debootstrap (for the container test's base image). Does
# nothing when all are present.
set -euo pipefail
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v c++ >/dev/null || missing+=(g++)
command -v clang >/dev/null || missing+=(clang)
if ! ldconfig -p 2>/dev/null | grep -q 'libclang.*\.so' && ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
  missing+=(libclang-dev)
fi
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
# The benchmark reports' PNG charts draw their text with this font.
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[[ -e /usr/include/fontconfig/fontconfig.h ]] || missing+=(libfontconfig1-dev)
# The playground's browser tests drive Debian's Chromium.
command -v chromium >/dev/null || missing+=(chromium)
if [[ ${1:-} == vulkan ]]; then
  command -v glslc >/dev/null || missing+=(glslc)
  [[ -e /usr/include/vulkan/vulkan_core.h ]] || missing+=(libvulkan-dev)
  [[ -d /usr/share/cmake/SPIRV-Headers || -d /usr/lib/cmake/SPIRV-Headers ]] || missing+=(spirv-headers)
  ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
fi
if [[ ${1:-} == docker ]]; then
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
fi
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "deps: installing ${missing[*]} with apt-get..."
SUDO=
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed ${missing[*]}"
