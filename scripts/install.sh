#!/usr/bin/env bash
# Set up torchslim on a fresh Debian/Ubuntu box, then build the bundled example.
#   bash scripts/install.sh            # install + build examples/hello-torch → hello.tar
#   bash scripts/install.sh --no-build # install only (what CI does before the tests)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# Debian packages: podman+runc to load and run images, skopeo/umoci to check them,
# docker-registry for the loopback registry tests, gpgv + keyring to verify Debian
# release files, binutils for strip, python3-venv for the virtual environment,
# qemu-user-static so a linux/arm64 image is proven (run) on an amd64 host and back,
# tar-split and zstd to read zstd:chunked layers as containers/storage and plain zstd do.
PKGS="podman runc skopeo umoci docker-registry gpgv debian-archive-keyring binutils python3-venv git qemu-user-static tar-split zstd"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# Debian's docker-registry starts a service on :5000; the tests start their own.
$SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3 python3.11 python3.12 python3.13; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY=$c; break
    fi
  done
fi
[ -n "$PY" ] || { echo "error: torchslim needs Python >= 3.11; install python3.11" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

# podman on hosts without systemd/cgroup v2 delegation: runc + cgroupfs (see README).
export CONTAINERS_CONF="$PWD/tests/podman/containers.conf"

if [ "${1:-}" != "--no-build" ]; then
  .venv/bin/torchslim build examples/hello-torch --output docker-archive:hello.tar --force
  echo
  echo "Built hello.tar. Load and run it:"
  echo "  export CONTAINERS_CONF=$CONTAINERS_CONF"
  echo "  podman load -i hello.tar && podman run --rm -p 8000:8000 localhost/hello-torch:v1.2-pytorch2.13-cpu"
fi
