#!/usr/bin/env bash
# Builds the CPU image from docker/Dockerfile on a machine without a container registry, for
# the container test: starts Debian's Docker daemon if none runs (vfs storage, host
# networking), makes the runtime base image with debootstrap, and builds the Dockerfile's
# runtime stage around the host's release binary (no Rust toolchain can be downloaded into
# an image here). Prints the image tag. Exit 3: no Docker daemon can run on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${TAG:-lantern:test}
WORK=${WORK:-/tmp/lantern-docker}
mkdir -p "$WORK"

bash scripts/install-deps.sh docker >&2 || { echo "docker: cannot install docker.io" >&2; exit 3; }
# Debian's client builds with the daemon's own BuildKit; a newer client elsewhere on PATH may
# insist on the buildx plugin, which is not installed.
docker() { if [[ -x /usr/bin/docker ]]; then /usr/bin/docker "$@"; else command docker "$@"; fi; }
if ! docker info >/dev/null 2>&1; then
  echo "docker: starting dockerd (vfs storage, no bridge)" >&2
  (dockerd --storage-driver=vfs --iptables=false --bridge=none >"$WORK/dockerd.log" 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "docker: dockerd did not start: $(tail -3 "$WORK/dockerd.log")" >&2; exit 3; }
fi

if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  echo "docker: making debian:bookworm-slim with debootstrap (about 1.5 minutes)" >&2
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1
  tar -C "$WORK/rootfs" -c . | docker import - debian:bookworm-slim >/dev/null
  rm -rf "$WORK/rootfs"
fi

# The host's binary, where the Dockerfile's build stage would have put it.
rm -rf "$WORK/binary" && mkdir -p "$WORK/binary/src/target/release"
cp target/release/lantern "$WORK/binary/src/target/release/"
tar -C "$WORK/binary" -c . | docker import - lantern-host-binary:latest >/dev/null

DOCKER_BUILDKIT=1 docker build --network host -f docker/Dockerfile --target runtime \
  --build-arg LANTERN_BINARY_FROM=lantern-host-binary:latest -t "$TAG" . >"$WORK/build.log" 2>&1 \
  || { echo "docker: build failed:" >&2; tail -20 "$WORK/build.log" >&2; exit 1; }
echo "$TAG"
