#!/usr/bin/env bash
# Builds the pinned nats-server release (Apache-2.0) from the Go module proxy into a cache outside the repository:
# the JetStream server of the fleet-wide task queue (docs/architecture.md, "A fleet-wide queue"). Debian 12's
# package (2.9.10) has no `sync_interval`, so it cannot fsync each write before its ack; 2.10+ can
# (`sync_interval: always`, which the Fleet writes). The Fleet ships this binary to every queue host (content-
# addressed), whatever nats-server the host has.
#
#   scripts/build-nats-server.sh        -> prints the path of the nats-server binary
#
# Env: NATS_SERVER_VERSION (default below), FC_CACHE_DIR (default ~/.cache/fc-provider).
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/build-go-tool.sh" nats-server "${NATS_SERVER_VERSION:-v2.15.2}" \
  github.com/nats-io/nats-server/v2
