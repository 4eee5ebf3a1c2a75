#!/bin/sh
# Side-by-side benchmark of keygate, a bare Go reverse proxy and nginx on
# this machine. Installs Debian's nginx and wrk when missing (needs root or
# sudo), then runs cmd/keygate-bench from the repository root; extra
# arguments go to it (e.g. -rounds 5 -duration 15s -redis "").
set -eu
cd "$(dirname "$0")/.."
missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
if [ -n "$missing" ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get install -y $missing
fi
exec go run ./cmd/keygate-bench run "$@"
