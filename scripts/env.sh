# Sourced by the other scripts: where things live, and the environment the Pulumi CLI runs with.
FC_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"  # go and pip need one; CI may not set it
export FC_CACHE_DIR="${FC_CACHE_DIR:-${HOME:-/root}/.cache/fc-provider}"
export FC_PULUMI_VERSION="${PULUMI_VERSION:-v3.274.1}"
export FC_STATE_DIR="${FC_STATE_DIR:-/var/lib/fc-provider}"
# A user who already has the Pulumi CLI keeps it: the built one is used only when none is on PATH.
if ! command -v pulumi >/dev/null 2>&1 || [[ "$(command -v pulumi)" == "$FC_CACHE_DIR"/* ]]; then
  export PATH="$FC_CACHE_DIR/pulumi-$FC_PULUMI_VERSION/bin:$PATH"
fi
export PATH="$FC_REPO/.venv/bin:$PATH"
export PULUMI_PYTHON_CMD="$FC_REPO/.venv/bin/python"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$FC_STATE_DIR/pulumi-state}"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-local-lab-passphrase}"
export PULUMI_HOME="${PULUMI_HOME:-$FC_STATE_DIR/pulumi-home}"
export PULUMI_SKIP_UPDATE_CHECK=1
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
mkdir -p "$FC_STATE_DIR/pulumi-state" "$PULUMI_HOME"
# bash has a builtin named `fc` (history editing) that would shadow our operator CLI in this shell.
[[ -n "${BASH_VERSION:-}" ]] && enable -n fc 2>/dev/null || true
