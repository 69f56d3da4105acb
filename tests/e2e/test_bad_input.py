"""Issue 2 bad input at the command line: one clear line, a non-zero exit, no output left.

These resolve against PyPI and the Debian archive, so they are network-marked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import copy_example

pytestmark = [pytest.mark.network]


def run_build(project: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torchslim.cli",
            "build",
            str(project),
            "--output",
            f"docker-archive:{out}",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def assert_one_line_failure(
    proc: subprocess.CompletedProcess[str], out: Path, *needles: str
) -> None:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*")), "a temporary output was left behind"


def test_requirement_that_does_not_resolve(ts_cache: Path, tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    (project / "requirements.txt").write_text("fastapi==0.115.*\nno-such-package-torchslim==1.0\n")
    out = tmp_path / "x.tar"
    assert_one_line_failure(run_build(project, out), out, "no-such-package-torchslim")
    assert not (project / "pylock.toml").exists()


def test_unreachable_mirror(ts_cache: Path, tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    out = tmp_path / "x.tar"
    proc = run_build(project, out, "--mirror", "http://127.0.0.1:9/debian")
    assert_one_line_failure(proc, out, "127.0.0.1:9")


def test_unreachable_index(ts_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = copy_example(tmp_path / "p")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    out = tmp_path / "x.tar"
    assert_one_line_failure(run_build(project, out), out, "127.0.0.1:9")


def test_unknown_profile(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    out = tmp_path / "x.tar"
    proc = run_build(project, out, "--profile", "tiny")
    assert_one_line_failure(proc, out, "tiny", "inference")
