"""Issue 5 acceptance: the generated Dockerfile builds with buildah (podman build).

Both stages use an OS-only base that torchslim built itself (``--target os``,
with python3.11-venv added so the builder can make the venv), loaded into podman.
The PyTorch index is out of reach here, so the test hands pip the local torch
wheel folder through the Dockerfile's PIP_FIND_LINKS build argument, and the
host's CA bundle (the proxy's CA lives only there) through PIP_CERT.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import copy_example, free_port, podman, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.network]

WHEELS = Path("/opt/wheels")
CA = Path("/etc/ssl/certs/ca-certificates.crt")


def torchslim(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "torchslim.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_generated_dockerfile_builds_runs_and_lints(ts_cache: Path, tmp_path: Path) -> None:
    if not any(WHEELS.glob("torch-2.13.0+cpu-*.whl")):
        pytest.skip("the local torch 2.13.0 CPU wheel is not on this machine")
    project = copy_example(tmp_path / "hello-torch")
    # init = "tini": the OS base gets Debian's tini, and the Dockerfile runs cmd under it.
    with (project / "torchslim.toml").open("a") as f:
        f.write('apt = ["python3.11-venv"]\ninit = "tini"\n')
    base_tar = tmp_path / "os.tar"
    torchslim(
        "build",
        str(project),
        "--target",
        "os",
        "--tag",
        "e2e-os",
        "--output",
        f"docker-archive:{base_tar}",
    )
    podman("load", "-i", str(base_tar))
    base = "localhost/hello-torch:e2e-os"

    torchslim("dockerfile", str(project))
    dockerfile = project / "Dockerfile"
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in dockerfile.read_text()
    lint = subprocess.run(
        [sys.executable, "-m", "torchslim.cli", "lint", str(dockerfile), "--fail-on", "error"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if Path(hadolint).exists():
        proc = subprocess.run(
            [hadolint, "--failure-threshold", "error", str(dockerfile)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout

    image = "localhost/hello-torch:e2e-dockerfile"
    podman(
        "build",
        "--format",
        "docker",
        "--target",
        "runtime",
        "-t",
        image,
        "--build-arg",
        f"BUILDER_IMAGE={base}",
        "--build-arg",
        f"RUNTIME_IMAGE={base}",
        "--build-arg",
        "PIP_FIND_LINKS=/wheels",
        "--build-arg",
        f"PIP_CERT={CA}",
        "-v",
        f"{WHEELS}:/wheels:ro",
        "-v",
        f"{CA}:{CA}:ro",
        str(project),
        timeout=1200,
    )
    port = free_port()
    name = f"df-e2e-{port}"
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", image)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.json() == {"outputs": [[0.5, 1.0]]}
        uid = podman("exec", name, "python3", "-c", "import os; print(os.getuid())")
        assert uid.stdout.strip() == "1000"
        pid1 = "print(open('/proc/1/cmdline').read().split(chr(0))[0])"
        assert podman("exec", name, "python3", "-c", pid1).stdout.strip() == "/usr/bin/tini"
        assert podman("healthcheck", "run", name, check=False).returncode == 0
    finally:
        podman("rm", "-f", name, check=False)
        podman("rmi", "-f", image, base, check=False)
