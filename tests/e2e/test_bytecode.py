"""bytecode = "imported" on the example: the census comes from serving it, the image keeps
the .pyc of what the service imported, is proven and answers; built again it is the same
image, proven once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import copy_example, free_port, podman, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.network]


def build(project: Path, archive: Path) -> dict[str, Any]:
    report = archive.with_suffix(".json")
    proc = subprocess.run(
        [
            sys.executable, "-m", "torchslim.cli", "build", str(project), "--force",
            "--output", f"docker-archive:{archive}", "--json", str(report),
        ],
        capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def steps(report: dict[str, Any]) -> list[str]:
    return [s["step"] for s in report["steps"]]


def test_only_the_imported_modules_keep_bytecode(ts_cache: Path, tmp_path: Path) -> None:
    project = copy_example(tmp_path / "svc")
    every = build(project, tmp_path / "all.tar")
    config = project / "torchslim.toml"
    config.write_text(config.read_text() + 'bytecode = "imported"\n')
    first = build(project, tmp_path / "imported.tar")
    assert first["proof"]["status"] == "proven"
    assert first["proof"]["served"]["imports"], "the served proof recorded no imports"
    assert any(s.startswith("Census: the service imported") for s in steps(first))
    rules = {r["id"]: r for r in first["ledger"]["rules"]}
    dropped = rules["unimported-bytecode"]
    assert dropped["bytes"] > 40_000_000 and dropped["files"] > 2000, dropped
    saved = every["size"]["uncompressed"] - first["size"]["uncompressed"]
    assert saved > 40_000_000, (every["size"], first["size"])

    # The same inputs again: the census is the one the image was made with; one proof.
    again = build(project, tmp_path / "again.tar")
    assert again["digest"] == first["digest"]
    assert not any(s.startswith("Census:") for s in steps(again))

    out = podman("load", "-i", str(tmp_path / "imported.tar")).stdout
    image = out.strip().rsplit(" ", 1)[-1]
    port = free_port()
    name = f"bytecode-{port}"
    podman("run", "-d", "--read-only", "--name", name, "-p", f"127.0.0.1:{port}:8000", image)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.json() == {"outputs": [[0.5, 1.0]]}
    finally:
        podman("rm", "-f", name, check=False)
        podman("rmi", "-f", image, check=False)
