#!/usr/bin/env bash
# Builds one pinned Go command from the Go module proxy into the cache outside the repository (once: a second run
# with the cache present takes well under a second) and prints the binary's path. Used by build-nats-server.sh and
# build-versitygw.sh, which say why each tool is built rather than installed from Debian.
#
#   scripts/build-go-tool.sh NAME VERSION PACKAGE    e.g. nats-server v2.15.2 github.com/nats-io/nats-server/v2
#
# Env: FC_CACHE_DIR (default ~/.cache/fc-provider). The binary lands in $FC_CACHE_DIR/NAME-VERSION/NAME.
set -euo pipefail

NAME="$1" VERSION="$2" PACKAGE="$3"
CACHE_DIR="${FC_CACHE_DIR:-${HOME:-/root}/.cache/fc-provider}"
BIN_DIR="$CACHE_DIR/$NAME-$VERSION"
if [[ -x "$BIN_DIR/$NAME" ]]; then
  echo "$BIN_DIR/$NAME"
  exit 0
fi
command -v go >/dev/null || { echo "build-$NAME: Go is required (apt-get install golang-go)" >&2; exit 1; }
mkdir -p "$CACHE_DIR"
TMP_BIN="$(mktemp -d "$CACHE_DIR/.$NAME-build.XXXXXX")"
trap 'rm -rf "$TMP_BIN"' EXIT
echo "build-$NAME: building $NAME $VERSION (a minute or two, once)" >&2
GOBIN="$TMP_BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "$PACKAGE@$VERSION" >&2
mkdir -p "$BIN_DIR"
mv "$TMP_BIN/$NAME" "$BIN_DIR/$NAME"
echo "$BIN_DIR/$NAME"
