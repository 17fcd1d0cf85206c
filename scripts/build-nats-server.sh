#!/usr/bin/env bash
# Builds the pinned nats-server release (Apache-2.0) from the Go module proxy into a cache outside the repository:
# the JetStream server of the fleet-wide task queue (docs/architecture.md, "A fleet-wide queue"). Debian 12's
# package (2.9.10) has no `sync_interval`, so it cannot fsync each write before its ack; 2.10+ can
# (`sync_interval: always`, which the Fleet writes). The Fleet ships this binary to every queue host (content-
# addressed), whatever nats-server the host has. A second run with the cache present takes well under a second.
#
#   scripts/build-nats-server.sh        -> prints the path of the nats-server binary
#
# Env: NATS_SERVER_VERSION (default below), FC_CACHE_DIR (default ~/.cache/fc-provider).
set -euo pipefail

VERSION="${NATS_SERVER_VERSION:-v2.15.2}"
CACHE_DIR="${FC_CACHE_DIR:-${HOME:-/root}/.cache/fc-provider}"
BIN_DIR="$CACHE_DIR/nats-server-$VERSION"
if [[ -x "$BIN_DIR/nats-server" ]]; then
  echo "$BIN_DIR/nats-server"
  exit 0
fi
command -v go >/dev/null || { echo "build-nats-server: Go is required (apt-get install golang-go)" >&2; exit 1; }
mkdir -p "$CACHE_DIR"
TMP_BIN="$(mktemp -d "$CACHE_DIR/.nats-server-build.XXXXXX")"
trap 'rm -rf "$TMP_BIN"' EXIT
echo "build-nats-server: building nats-server $VERSION (about a minute, once)" >&2
GOBIN="$TMP_BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "github.com/nats-io/nats-server/v2@$VERSION" >&2
mkdir -p "$BIN_DIR"
mv "$TMP_BIN/nats-server" "$BIN_DIR/nats-server"
echo "$BIN_DIR/nats-server"
