#!/usr/bin/env bash
# Builds lantern with llama.cpp's Vulkan backend into target/vulkan (beside the CPU-only build),
# after installing what it needs (scripts/install-deps.sh vulkan).
# This llama.cpp needs Vulkan headers 1.3.261 or newer (VK_EXT_layer_settings); Debian 12 ships
# 1.3.239, so newer headers are taken from Debian 13's libvulkan-dev package when needed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh vulkan

if [[ -z ${VULKAN_SDK:-} ]] && ! grep -q VK_EXT_layer_settings /usr/include/vulkan/vulkan_core.h; then
  sdk=$PWD/target/vulkan-sdk
  if [[ ! -e $sdk/usr/include/vulkan/vulkan_core.h ]]; then
    SUDO=
    if [[ $(id -u) -ne 0 ]]; then
      command -v sudo >/dev/null || { echo "vulkan: need root (or sudo) to fetch newer Vulkan headers with apt-get, or set VULKAN_SDK to an SDK" >&2; exit 1; }
      SUDO=sudo
    fi
    echo "vulkan: system headers predate VK_EXT_layer_settings; fetching Debian 13's libvulkan-dev headers..."
    apt=$PWD/target/vulkan-apt
    rm -rf "$apt" && mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$sdk"
    echo "deb http://deb.debian.org/debian trixie main" >"$apt/sources.list"
    opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
      -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::archives=$apt/archives"
      -o APT::Sandbox::User=root)
    $SUDO apt-get "${opts[@]}" update -qq
    (cd "$apt" && $SUDO apt-get "${opts[@]}" download -qq libvulkan-dev)
    dpkg -x "$apt"/libvulkan-dev_*.deb "$sdk"
  fi
  # FindVulkan looks in $VULKAN_SDK/include first; the loader still comes from the system.
  export VULKAN_SDK=$sdk/usr
fi

echo "vulkan: building lantern with --features vulkan into target/vulkan (llama.cpp and its shaders take a while)..."
CARGO_TARGET_DIR=target/vulkan cargo build --release -p lantern-server --features vulkan
