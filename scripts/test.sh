#!/usr/bin/env bash
# Runs the whole test suite on real components (lab fleet, dockerd, sshd, SQLite, the Pulumi CLI).
#   scripts/test.sh                 -> the suite, in FC_TEST_WORKERS processes (default 2), each on a lab of its own
#   scripts/test.sh tests/x.py ...  -> what is named, in one process (FC_TEST_WORKERS to say otherwise)
# The suite mostly waits (on Pulumi, engines, SSH, timers): a serial run left about half of this machine's two
# cores idle, so two workers take a test file at a time each (pytest-xdist --dist loadfile: a file's module
# fixtures stay in one process); tests/conftest.py gives the second worker its own lab, subnet and Pulumi state.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FC_REPO"
bash scripts/setup.sh
workers="${FC_TEST_WORKERS:-$(( $# ? 1 : 2 ))}"
parallel=()
if (( workers > 1 )); then
  parallel=(-n "$workers" --dist loadfile)
fi
# --durations: every run names its slowest tests, so the suite can be kept inside its time budget
exec .venv/bin/pytest -v -p no:cacheprovider --durations=30 "${parallel[@]}" "$@"
