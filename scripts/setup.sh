#!/usr/bin/env bash
# Sets up everything on a fresh Debian 12 machine (root; package registries reachable). Idempotent and quick
# when everything is already there: Debian packages, the virtualenv, the Pulumi CLI build, the runtime images.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FC_REPO"

# haproxy: the front door of CustomDomain (lab hosts share the machine's binaries, so one install serves them all).
# (nats-server is built, not installed: Debian's 2.9 cannot fsync each write; see scripts/build-nats-server.sh.)
PACKAGES=(docker.io debootstrap openssh-server iproute2 procps psmisc curl util-linux tar gzip ca-certificates systemd sudo
          haproxy)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's nats-server package, where a machine still has it, enables a loopback server of its own; the fleet's
# hosts (and the tests) start theirs with their own configuration, so the packaged service is never wanted.
if [[ -d /run/systemd/system ]] && systemctl is-enabled nats-server >/dev/null 2>&1; then
  systemctl disable --now nats-server >/dev/null 2>&1 || true
fi
command -v go >/dev/null || { echo "setup: Go is required to build the Pulumi CLI (apt-get install golang-go)" >&2; exit 1; }

stamp="$FC_REPO/.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "setup: creating the virtualenv" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi

bash scripts/build-pulumi.sh >/dev/null
bash scripts/build-versitygw.sh >/dev/null  # the S3 server of the OSS-trigger tests and examples/object_pipeline
# nats-server 2.15 (Debian's 2.9 cannot fsync each write): the JetStream task queue's server, shipped to the hosts
bash scripts/build-nats-server.sh >/dev/null
.venv/bin/fc-lab images >/dev/null
# The other runtimes' images (fc_lab/_images.py) build once, cached, in the background: only the tests that run
# those runtimes wait for them (a lock per image makes them wait instead of building twice).
images="${FC_CACHE_DIR:-$HOME/.cache/fc-provider}/images"
for runtime in python3.9 python3.13 nodejs18 nodejs20; do
  if [[ ! -f "$images/fc-runtime-$runtime.tar" ]]; then
    echo "setup: building the other runtime images in the background (log: $images/background-build.log)" >&2
    nohup nice -n 10 .venv/bin/fc-lab images --runtime python3.9 --runtime python3.13 --runtime nodejs18 \
      --runtime nodejs20 >"$images/background-build.log" 2>&1 </dev/null &
    break
  fi
done
# The rootfs of the lab's systemd host (tests/test_systemd_host.py; Debian 12 with systemd, sshd, python3, docker.io),
# built once and cached in the background too: the test waits on its lock.
if [[ ! -f "$images/fc-lab-systemd-host.tar" ]]; then
  echo "setup: building the systemd host's rootfs in the background (log: $images/systemd-host-build.log)" >&2
  nohup nice -n 10 .venv/bin/fc-lab images --systemd-host >"$images/systemd-host-build.log" 2>&1 </dev/null &
fi
echo "setup: ready (pulumi $(pulumi version))" >&2
