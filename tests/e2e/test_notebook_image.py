"""The notebook image in podman: read-only, as uid 1000, JupyterLab answers with its token
and 403 without it, and it refuses to start with an empty token.

The service is the small real one of ``support.fakebuild`` (no torch); the notebook layer is
the real JupyterLab and ipykernel from PyPI, hence ``network``.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.fakebuild import fake_service

from torchslim.build import BuildOptions, build, plan_build, publish
from torchslim.config import load_config
from torchslim.deps.pipconf import IndexSettings

from .conftest import free_port, podman

pytestmark = [pytest.mark.e2e, pytest.mark.network]
TOKEN = "e2e-notebook-token-5f2c"


def _build(root: Path, target: str, out: Path) -> tuple[str, list[str]]:
    opts = BuildOptions(output=f"docker-archive:{out}", target=target)  # type: ignore[arg-type]
    bp = plan_build(load_config(root), opts, IndexSettings(), environ={})
    result = build(bp.plans[0])
    assert result.proof is not None and result.proof.ok, result.proof
    publish(bp, [result])
    podman("load", "-q", "-i", str(out))
    return f"svc:{bp.tag}", [layer.descriptor.digest for layer in result.image.layers()]


def _status(url: str, timeout: float = 90) -> int:
    """The HTTP status of ``url`` once the server answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                return int(r.status)
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.xfail(
    reason="fakebuild's trimmed base lacks libpthread.so.0, librt.so.1 and libstdc++.so.6 that "
    "pyzmq, tornado and debugpy load: the proof refuses the image (run on examples/hello-torch)",
    strict=False,
)
def test_notebook_answers_with_its_token_and_refuses_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))
    service = fake_service(tmp_path, monkeypatch)
    _, layers = _build(service.root, "image", tmp_path / "svc.tar")
    image, nb_layers = _build(service.root, "notebook", tmp_path / "nb.tar")
    assert image.endswith("-notebook") and nb_layers[:-1] == layers  # only Jupyter is new
    try:
        empty = podman("run", "--rm", "--read-only", "-e", "JUPYTER_TOKEN=", image, check=False)
        assert empty.returncode == 2 and "without a token" in empty.stderr, empty
        assert empty.stderr.strip().count("\n") == 0, empty.stderr
        none = podman("run", "--rm", "--read-only", image, check=False)
        assert none.returncode == 2 and "without a token" in none.stderr, none
        port = free_port()
        name = f"nb-{tmp_path.name}"
        podman(
            "run", "-d", "--name", name, "--read-only", "-e", f"JUPYTER_TOKEN={TOKEN}",
            "-p", f"127.0.0.1:{port}:8888", image,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            assert _status(f"{base}/api/status?token={TOKEN}") == 200
            assert _status(f"{base}/api/status") == 403
            assert _status(f"{base}/api/status?token=wrong") == 403
            uid = podman("exec", name, "python3", "-c", "import os; print(os.getuid())")
            assert uid.stdout.strip() == "1000"
            kernel = podman(
                "exec", name, "python3", "-c",
                "import ipykernel, jupyterlab; print('kernel ok')",
            )  # fmt: skip
            assert "kernel ok" in kernel.stdout
        finally:
            logs = podman("logs", name, check=False)
            podman("rm", "-f", name, check=False)
        assert "allow-root" not in logs.stdout + logs.stderr
    finally:
        podman("rmi", "-f", image, check=False)
