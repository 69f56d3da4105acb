"""`--no-slim` and every profile build the example, prove it, and it serves from podman."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import copy_example, free_port, podman, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.network]


@pytest.mark.parametrize(
    "options",
    [("--no-slim",), ("--profile", "compile"), ("--profile", "distributed"), ("--profile", "full")],
    ids=["no-slim", "compile", "distributed", "full"],
)
def test_builds_proves_and_serves(ts_cache: Path, tmp_path: Path, options: tuple[str, ...]) -> None:
    """(The default profile, inference, is test_build_example's.) zstd: quicker to write."""
    project = copy_example(tmp_path / "hello-torch")
    tag = "profile-" + options[-1].lstrip("-")
    archive, report = tmp_path / "img.tar", tmp_path / "r.json"
    cmd = ["build", str(project), "--output", f"docker-archive:{archive}", "--tag", tag]
    cmd += ["--compression", "zstd", "--json", str(report), *options]
    proc = subprocess.run(
        [sys.executable, "-m", "torchslim.cli", *cmd], capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert data["proof"]["status"] == "proven", data["proof"]
    assert data["profile"] == (None if options == ("--no-slim",) else options[-1])
    podman("load", "-i", str(archive))
    port = free_port()
    name = f"profile-{tag}-{port}"
    podman("run", "-d", "--rm", "--read-only", "--tmpfs", "/tmp", "--name", name, "-p",
           f"127.0.0.1:{port}:8000", f"localhost/hello-torch:{tag}")  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.json() == {"outputs": [[0.5, 1.0]]}
    finally:
        podman("rm", "-f", name, check=False)
        podman("rmi", "-f", f"localhost/hello-torch:{tag}", check=False)
