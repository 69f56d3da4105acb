"""Fixtures for end-to-end builds: a shared torchslim cache and podman on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hello-torch"
PODMAN_CONF = REPO / "tests" / "podman" / "containers.conf"


def copy_example(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("pylock.toml", "__pycache__"))
    return dest


def podman(
    *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (bash scripts/install.sh installs it)")
    env = {**os.environ, "CONTAINERS_CONF": str(PODMAN_CONF)}
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, check=check, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout: float = 120) -> float:
    """Seconds until ``url`` first answers 200."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s")


@pytest.fixture(scope="module")
def registry_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's real docker-registry on a free loopback port, for one test module."""
    import sys

    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (bash scripts/install.sh installs it)")
    sys.path.insert(0, str(REPO / "tests" / "unit" / "registry"))
    from support.registry import start_registry

    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg.host
    reg.stop()
