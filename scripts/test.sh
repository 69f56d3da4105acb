#!/usr/bin/env bash
# Run every test: fast unit tests plus the network- and e2e-marked ones (what CI runs).
# For the fast unit tests alone: .venv/bin/pytest
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/tests/podman/containers.conf"
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy --strict src
exec .venv/bin/pytest -m "" -ra "$@"
