#!/usr/bin/env bash
# Builds the pinned versitygw release (Apache-2.0, an S3-compatible gateway that posts S3 event records to a
# webhook) from the Go module proxy into a cache outside the repository: the S3 server the OSS-trigger tests and
# examples run against. A second run with the cache present takes well under a second.
#
#   scripts/build-versitygw.sh        -> prints the path of the versitygw binary
#
# Env: VERSITYGW_VERSION (default below), FC_CACHE_DIR (default ~/.cache/fc-provider).
set -euo pipefail

VERSION="${VERSITYGW_VERSION:-v1.8.0}"
CACHE_DIR="${FC_CACHE_DIR:-${HOME:-/root}/.cache/fc-provider}"
BIN_DIR="$CACHE_DIR/versitygw-$VERSION"
if [[ -x "$BIN_DIR/versitygw" ]]; then
  echo "$BIN_DIR/versitygw"
  exit 0
fi
command -v go >/dev/null || { echo "build-versitygw: Go is required (apt-get install golang-go)" >&2; exit 1; }
TMP_BIN="$(mktemp -d "$CACHE_DIR/.versitygw-build.XXXXXX")"
trap 'rm -rf "$TMP_BIN"' EXIT
echo "build-versitygw: building versitygw $VERSION (about 2 minutes, once)" >&2
GOBIN="$TMP_BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "github.com/versity/versitygw/cmd/versitygw@$VERSION" >&2
mkdir -p "$BIN_DIR"
mv "$TMP_BIN/versitygw" "$BIN_DIR/versitygw"
echo "$BIN_DIR/versitygw"
