#!/usr/bin/env bash
# Checks an image built by deploy/build-image.sh: non-root user, entrypoint,
# command, healthcheck, OCI labels; then runs the binary from the image's
# exported filesystem: `keygate version` must print VERSION and the release
# Go (deploy/release-toolchain.sh), and
# `keygate config check` must accept CONFIG.
#
#   deploy/check-image.sh TAG VERSION CONFIG
set -euo pipefail
tag="$1" version="$2" config="$3"
if command -v podman >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  engine=(podman ${KEYGATE_PODMAN_FLAGS:---storage-driver vfs})
else
  engine=(docker)
fi
fail() { echo "check-image: $*" >&2; exit 1; }
inspect() { "${engine[@]}" image inspect --format "$1" "$tag"; }

[ "$(inspect '{{.Config.User}}')" = "65532:65532" ] || fail "user is $(inspect '{{.Config.User}}'), want 65532:65532"
[ "$(inspect '{{json .Config.Entrypoint}}')" = '["/usr/local/bin/keygate"]' ] || fail "entrypoint $(inspect '{{json .Config.Entrypoint}}')"
[ "$(inspect '{{json .Config.Cmd}}')" = '["serve"]' ] || fail "cmd $(inspect '{{json .Config.Cmd}}')"
[ "$(inspect '{{json .Config.Healthcheck.Test}}')" = '["CMD","/usr/local/bin/keygate","healthcheck"]' ] || fail "healthcheck $(inspect '{{json .Config.Healthcheck}}')"
[ "$(inspect '{{index .Config.Labels "org.opencontainers.image.version"}}')" = "$version" ] || fail "version label"
[ -n "$(inspect '{{index .Config.Labels "org.opencontainers.image.source"}}')" ] || fail "no source label"
[ -n "$(inspect '{{index .Config.Labels "org.opencontainers.image.licenses"}}')" ] || fail "no licenses label"
inspect '{{json .Config.Env}}' | grep -q 'KEYGATE_CONFIG=/etc/keygate/keygate.yaml' || fail "KEYGATE_CONFIG not set"
inspect '{{json .Config.Volumes}}' | grep -q '/var/lib/keygate' || fail "no data volume"

root="$(mktemp -d)"
ctr="$("${engine[@]}" create "$tag")"
trap '"${engine[@]}" rm "$ctr" >/dev/null; rm -rf "$root"' EXIT
"${engine[@]}" export "$ctr" | tar -x -C "$root"
[ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA certificates"
grep -q '^keygate:x:65532:' "$root/etc/passwd" || fail "no keygate user"
[ "$(stat -c %u "$root/var/lib/keygate")" = 65532 ] || fail "data directory not owned by the keygate user"
file "$root/usr/local/bin/keygate" 2>/dev/null | grep -q 'statically linked' || ldd "$root/usr/local/bin/keygate" 2>&1 | grep -q 'not a dynamic' || fail "binary is not static"
"$root/usr/local/bin/keygate" version >"$root/version.txt"
cat "$root/version.txt"
head -1 "$root/version.txt" | grep -qx "keygate $version" || fail "keygate version"
sed -n 2p "$root/version.txt" | grep -qE '^commit [0-9a-f]{40}' || fail "keygate version: no commit"
# The image's binary must be built with the release Go, not the machine's.
# shellcheck source=deploy/release-toolchain.sh
. "$(dirname "$0")/release-toolchain.sh"
[ "$(sed -n 3p "$root/version.txt")" = "$(go env GOVERSION)" ] || fail "built with $(sed -n 3p "$root/version.txt"), want the release Go $(go env GOVERSION)"
"$root/usr/local/bin/keygate" config check --config "$config"
echo "image $tag checked"
