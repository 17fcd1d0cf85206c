#!/usr/bin/env bash
# The main job: set up, bring up a local lab fleet of 3 hosts, deploy examples/quickstart with `pulumi up`,
# invoke the function and print its answer. Run it again at will: every step converges.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FC_REPO"
bash scripts/setup.sh
fc-lab up --hosts "${FC_LAB_HOSTS:-3}"
pulumi stack select quickstart 2>/dev/null || pulumi stack init quickstart
pulumi config set fleetFile "${FC_LAB_DIR:-/var/lib/fc-lab}/fleet.json"
pulumi up --yes --skip-preview
endpoint="$(pulumi stack output invoke_endpoints --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0])')"
echo "invoking: POST $endpoint"
answer="$(curl -sS --fail-with-body -X POST "$endpoint" -d '{"name": "quickstart"}')"
echo "answer: $answer"
echo "(tear down with: source scripts/env.sh && pulumi destroy --yes -s quickstart && fc-lab down)"
