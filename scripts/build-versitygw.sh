#!/usr/bin/env bash
# Builds the pinned versitygw release (Apache-2.0, an S3-compatible gateway that posts S3 event records to a
# webhook) from the Go module proxy into a cache outside the repository: the S3 server the OSS-trigger tests and
# examples run against.
#
#   scripts/build-versitygw.sh        -> prints the path of the versitygw binary
#
# Env: VERSITYGW_VERSION (default below), FC_CACHE_DIR (default ~/.cache/fc-provider).
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/build-go-tool.sh" versitygw "${VERSITYGW_VERSION:-v1.8.0}" \
  github.com/versity/versitygw/cmd/versitygw
