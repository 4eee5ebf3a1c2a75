#!/usr/bin/env bash
# Builds keygate's container image from deploy/Containerfile, offline:
# the static binary is compiled here first and copied in, CA certificates
# come from this machine, and the image starts FROM scratch, so nothing is
# pulled from a registry. Uses podman when installed, else docker.
#
#   deploy/build-image.sh [TAG]          (default keygate:dev)
#
# KEYGATE_VERSION overrides the version stamped into the binary and the
# image label (default: git describe). KEYGATE_PODMAN_FLAGS replaces the
# global podman flags (default: --storage-driver vfs, which works inside
# containers and unprivileged machines).
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${1:-keygate:dev}"
version="${KEYGATE_VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
certs=/etc/ssl/certs/ca-certificates.crt
[ -r "$certs" ] || { echo "build-image: $certs missing (install ca-certificates)" >&2; exit 1; }

# shellcheck source=deploy/release-toolchain.sh
. deploy/release-toolchain.sh

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT

# The release build: static, without the demo MCP server (nodemomcp).
CGO_ENABLED=0 go build -trimpath -tags nodemomcp \
  -ldflags "-s -w -X main.version=$version -X main.commit=$revision" -o "$ctx/keygate" ./cmd/keygate
cp "$certs" "$ctx/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nkeygate:x:65532:65532:keygate:/var/lib/keygate:/sbin/nologin\n' >"$ctx/passwd"
printf 'root:x:0:\nkeygate:x:65532:\n' >"$ctx/group"
mkdir -p "$ctx/data" "$ctx/config"
cp deploy/Containerfile "$ctx/Containerfile"

args=(--file "$ctx/Containerfile" --tag "$tag"
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created")

if command -v podman >/dev/null 2>&1; then
  # --format docker keeps HEALTHCHECK, which the OCI format has no field for.
  # shellcheck disable=SC2086
  podman ${KEYGATE_PODMAN_FLAGS:---storage-driver vfs} build --isolation chroot --format docker --pull=never "${args[@]}" "$ctx"
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  docker build "${args[@]}" "$ctx"
else
  echo "build-image: neither podman nor a running docker found (Debian: apt-get install podman)" >&2
  exit 1
fi
echo "built $tag (keygate $version)"
