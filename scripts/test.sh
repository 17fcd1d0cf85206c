#!/usr/bin/env bash
# Runs the whole test suite on real components (lab fleet, dockerd, sshd, SQLite, the Pulumi CLI).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FC_REPO"
bash scripts/setup.sh
# --durations: every run names its slowest tests, so the suite can be kept inside its time budget
exec .venv/bin/pytest -v -p no:cacheprovider --durations=30 "$@"
