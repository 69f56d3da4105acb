"""The census on the example: bytecode = "imported" keeps the .pyc of what the service
loaded, profile "used" keeps only what it loaded; each image is proven and answers;
built again it is the same image, proven once."""

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
    assert first["proof"]["served"]["opened"], "the served proof recorded no files"
    assert any(s.startswith("Census: the service loaded") for s in steps(first))
    rules = {r["id"]: r for r in first["ledger"]["rules"]}
    dropped = rules["unimported-bytecode"]
    assert dropped["bytes"] > 40_000_000 and dropped["files"] > 2000, dropped
    saved = every["size"]["uncompressed"] - first["size"]["uncompressed"]
    assert saved > 40_000_000, (every["size"], first["size"])

    # The same inputs again: the census is the one the image was made with; one proof.
    again = build(project, tmp_path / "again.tar")
    assert again["digest"] == first["digest"]
    assert not any(s.startswith("Census:") for s in steps(again))

    # profile "used": the distributions and modules never loaded go, named; re-proven.
    config.write_text(config.read_text().replace('bytecode = "imported"\n', "").replace(
        'profile = "inference"', 'profile = "used"'))  # fmt: skip
    used = build(project, tmp_path / "used.tar")
    assert used["proof"]["status"] == "proven"
    line = next(s for s in steps(used) if s.startswith("Profile used: dropping"))
    for name in ("sympy", "networkx", "mpmath"):
        assert f"{name} " in line, line
    rules = {r["id"]: r for r in used["ledger"]["rules"]}
    assert rules["unused-distribution"]["bytes"] > 40_000_000
    assert rules["unimported-module"]["bytes"] > 40_000_000
    saved = every["size"]["uncompressed"] - used["size"]["uncompressed"]
    assert saved > 120_000_000, (every["size"], used["size"])

    for archive in ("imported.tar", "used.tar"):
        answers(tmp_path / archive)


def answers(archive: Path) -> None:
    out = podman("load", "-i", str(archive)).stdout
    image = out.strip().rsplit(" ", 1)[-1]
    port = free_port()
    name = f"census-{port}"
    podman("run", "-d", "--read-only", "--name", name, "-p", f"127.0.0.1:{port}:8000", image)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.json() == {"outputs": [[0.5, 1.0]]}
        gone = podman("exec", name, "python3", "-c", FIND_SYMPY).stdout.strip()
        assert gone == ("None" if archive.name == "used.tar" else "found"), gone
    finally:
        podman("rm", "-f", name, check=False)
        podman("rmi", "-f", image, check=False)


FIND_SYMPY = "import importlib.util as u; print('found' if u.find_spec('sympy') else 'None')"
