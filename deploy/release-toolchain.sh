# Sourced (not run) by the scripts that build what ships, the container
# image, and by the check that judges it, govulncheck: both use the same Go.
#
# go.mod names the oldest Go that builds keygate, so `go run ./cmd/keygate`
# works on the Go a machine already has. A release is built with
# KEYGATE_RELEASE_GO or newer, a toolchain without the standard library's
# known vulnerabilities that keygate's code reaches: where the local Go is
# older, GOTOOLCHAIN selects the release one, which the go command fetches
# from the Go module proxy like any module (about 75 MB, once per machine).
# Raising the release Go is this one line.
KEYGATE_RELEASE_GO="${KEYGATE_RELEASE_GO:-go1.27.3}"

keygate_local_go="$(GOTOOLCHAIN=local go env GOVERSION)"
if [ "$(printf '%s\n%s\n' "$keygate_local_go" "$KEYGATE_RELEASE_GO" | sort -V | head -n1)" != "$KEYGATE_RELEASE_GO" ]; then
  export GOTOOLCHAIN="$KEYGATE_RELEASE_GO"
fi
echo "release toolchain: $(go env GOVERSION) (local Go is $keygate_local_go)" >&2
unset keygate_local_go
