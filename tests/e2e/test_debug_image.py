"""The debug image in podman: it joins a running service's PID namespace and py-spy dumps it.

The service is the small real one of ``support.fakebuild`` (no torch); the debug image adds
the real busybox-static from Debian and py-spy from PyPI, hence ``network``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fakebuild import fake_service

from torchslim.build import BuildOptions, build, plan_build, publish
from torchslim.config import load_config
from torchslim.deps.pipconf import IndexSettings

from .conftest import podman

pytestmark = [pytest.mark.e2e, pytest.mark.network]


def _build(root: Path, target: str, out: Path) -> tuple[str, list[str]]:
    """Build ``target`` into a docker-archive and load it: (its name, its layer digests)."""
    opts = BuildOptions(output=f"docker-archive:{out}", target=target)  # type: ignore[arg-type]
    bp = plan_build(load_config(root), opts, IndexSettings(), environ={})
    result = build(bp.plans[0])
    publish(bp, [result])
    podman("load", "-q", "-i", str(out))
    return f"svc:{bp.tag}", [layer.descriptor.digest for layer in result.image.layers()]


def test_debug_container_py_spy_dumps_the_running_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))
    service = fake_service(tmp_path, monkeypatch)
    image, layers = _build(service.root, "image", tmp_path / "svc.tar")
    debug, debug_layers = _build(service.root, "debug", tmp_path / "debug.tar")
    assert debug.endswith("-debug") and debug_layers[:-1] == layers  # only tools are new
    assert "not found" in podman("run", "--rm", image, "sh", check=False).stderr
    name = f"svc-{tmp_path.name}"
    podman("run", "-d", "--name", name, image)
    try:
        shell = podman("run", "--rm", "--pid", f"container:{name}", debug, "sh", "-c", "ps")
        assert "app.svc" in shell.stdout, shell.stdout
        dump = podman(
            "run", "--rm", "--pid", f"container:{name}", "--cap-add", "SYS_PTRACE",
            debug, "py-spy", "dump", "--pid", "1", check=False,
        )  # fmt: skip
        out = dump.stdout + dump.stderr
        assert dump.returncode == 0, out
        assert "Process 1: python3 -m app.svc" in out, out
        assert "serve_forever" in out and "svc/__main__.py" in out, out
    finally:
        podman("rm", "-f", name, check=False)
        podman("rmi", "-f", image, debug, check=False)
