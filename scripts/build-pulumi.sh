#!/usr/bin/env bash
# Builds one pinned Pulumi CLI release from the Go module proxy (no binary package of it is reachable here)
# and installs it, with the Python language host and the dynamic-provider plugin launcher, into a cache
# outside the repository. A second run with the cache present takes well under a second.
#
#   scripts/build-pulumi.sh            -> prints the bin directory to put on PATH
#
# Env: PULUMI_VERSION (default below), FC_CACHE_DIR (default ~/.cache/fc-provider).
set -euo pipefail

PULUMI_VERSION="${PULUMI_VERSION:-v3.274.1}"
CACHE_DIR="${FC_CACHE_DIR:-${HOME:-/root}/.cache/fc-provider}"
BIN_DIR="$CACHE_DIR/pulumi-$PULUMI_VERSION/bin"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

LANGHOST_STAMP="$(sha256sum "$REPO_DIR/scripts/langhost/main.go" | cut -c1-16)"
if [[ -x "$BIN_DIR/pulumi" && -x "$BIN_DIR/pulumi-language-python-exec" \
      && "$(cat "$BIN_DIR/.langhost-stamp" 2>/dev/null)" == "$LANGHOST_STAMP" ]]; then
  # The launchers are cheap and may change with the repo: always refresh them.
  install -m 0755 "$REPO_DIR/scripts/pulumi-resource-pulumi-python" "$BIN_DIR/pulumi-resource-pulumi-python"
  echo "$BIN_DIR"
  exit 0
fi

BUILD_DIR="$CACHE_DIR/pulumi-build-$PULUMI_VERSION"
mkdir -p "$BUILD_DIR" "$BIN_DIR"
cd "$BUILD_DIR"

# pkg/v3's go.mod carries `replace` directives (sdk/v3 => ../sdk, a clipboard fork), so `go install pkg@version`
# refuses. A go.mod of our own requires the same release and repeats the replace lines that matter outside
# Pulumi's monorepo.
cat > go.mod <<MOD
module fcprovider.local/pulumibuild

go 1.26

require (
	github.com/pulumi/pulumi/pkg/v3 $PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 $PULUMI_VERSION
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
MOD

export GOFLAGS="-mod=mod -buildvcs=false"
LDFLAGS="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
echo "building pulumi $PULUMI_VERSION CLI (first build takes several minutes)" >&2
if [[ ! -x "$BIN_DIR/pulumi" ]]; then
  go build -trimpath -ldflags "$LDFLAGS" -o "$BIN_DIR/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  mv "$BIN_DIR/pulumi.tmp" "$BIN_DIR/pulumi"
fi

# The Python language host: its module (sdk/python/cmd/pulumi-language-python/v3) is refused by the module proxy
# reachable here (HTTP 403), so we build our own small host against the same release's gRPC definitions.
mkdir -p langhost
cp "$REPO_DIR/scripts/langhost/main.go" langhost/main.go
go build -trimpath -ldflags "$LDFLAGS" -o "$BIN_DIR/pulumi-language-python.tmp" ./langhost
mv "$BIN_DIR/pulumi-language-python.tmp" "$BIN_DIR/pulumi-language-python"
# The shim that the host runs is the Python SDK's own, shipped in the same release's sdk/v3 module.
SDK_DIR="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
install -m 0755 "$SDK_DIR/python/cmd/pulumi-language-python-exec" "$BIN_DIR/pulumi-language-python-exec"
echo "$LANGHOST_STAMP" > "$BIN_DIR/.langhost-stamp"
install -m 0755 "$REPO_DIR/scripts/pulumi-resource-pulumi-python" "$BIN_DIR/pulumi-resource-pulumi-python"
echo "$BIN_DIR"
