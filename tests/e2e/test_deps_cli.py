"""`torchslim deps DIR`: the resolved prod set and the dev-only audit, from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import copy_example

pytestmark = [pytest.mark.network]


def deps(project: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torchslim.cli", "deps", str(project), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_example_has_no_dev_packages(ts_cache: Path, tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    proc = deps(project, "--strict")
    assert proc.returncode == 0, proc.stderr
    assert "torch" in proc.stdout and "fastapi" in proc.stdout and "uvicorn" in proc.stdout
    assert proc.stdout.count("no development-only packages in the production requirements") == 1
    assert "pytest" not in proc.stdout  # pytest is in requirements-dev.txt only


def test_transitive_dev_package_is_named_with_its_chain(ts_cache: Path, tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    (project / "requirements.txt").write_text("fastapi==0.115.*\nuvicorn==0.32.*\npytest-cov\n")
    proc = deps(project)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "pytest " in line or "pytest:" in line]
    assert any("pytest-cov" in line for line in lines), proc.stdout
    strict = deps(project, "--strict")
    assert strict.returncode == 3


def test_example_on_python_313_resolves(ts_cache: Path, tmp_path: Path) -> None:
    """Issue 22: Python 3.13 resolves and locks. This machine's indexes hold a cp311 CPU
    torch only, so the project takes PyPI's own torch build (cu130): the lock needs only
    the wheels' metadata, nothing of the 3 GB CUDA stack is downloaded."""
    project = copy_example(tmp_path / "p")
    config = project / "torchslim.toml"
    text = config.read_text().replace('python = "3.11"', 'python = "3.13"')
    config.write_text(text.replace('variant = "cpu"', 'variant = "cu130"'))
    proc = deps(project)
    assert proc.returncode == 0, proc.stderr
    assert "python-platform" not in proc.stderr
    assert "cp313-cp313-manylinux" in proc.stdout, proc.stdout
    lock = (project / "pylock.toml").read_text()
    assert 'requires-python = ">=3.13"' in lock
    assert "torch-2.13.0-cp313-cp313-manylinux" in lock, lock[:2000]
