"""Every hostile input of the corpus through the real CLI: the exit code and message it must
get, one line, no traceback, no "internal error", nothing written outside, memory bounded."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from support.hostile import CASES, Case, deep_json, hostile_registry

REPO = Path(__file__).resolve().parents[2]
# Written by a run and allowed: the cache's own folders, the home the run was given.
ALLOWED = ("cache/blobs", "cache/layers", "cache/tmp", "cache/probes", "home")


def _limit_memory(mib: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (mib * 1024 * 1024, mib * 1024 * 1024))


def snapshot(root: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def run_cli(
    tmp: Path, args: list[str], *, memory_mib: int = 1024, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "TORCHSLIM_CACHE": str(tmp / "cache"),
        "HOME": str(tmp / "home"),
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
        **(env or {}),
    }
    (tmp / "work").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "torchslim.cli", *args],
        cwd=tmp / "work",
        env=environ,
        capture_output=True,
        timeout=300,
        check=False,
        preexec_fn=lambda: _limit_memory(memory_mib),
    )


def check_outcome(
    proc: subprocess.CompletedProcess[bytes],
    code: int,
    message: str,
    not_in_output: tuple[str, ...] = (),
) -> None:
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    shown = f"exit {proc.returncode}\nstdout: {out[-3000:]}\nstderr: {err[-3000:]}"
    assert proc.returncode == code, shown
    assert "Traceback" not in err and "internal error" not in err, shown
    if code in (1, 2):
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), shown
        assert message in lines[0], shown
    else:
        assert message in out, shown
    for secret in not_in_output:
        assert secret not in out and secret not in err, shown


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "home").mkdir()
    args = case.make(tmp_path)
    before = snapshot(tmp_path)
    proc = run_cli(tmp_path, args, memory_mib=case.memory_mib, env=case.env)
    check_outcome(proc, case.code, case.message, case.not_in_output)
    new = {p for p in snapshot(tmp_path) - before if not p.startswith(ALLOWED)}
    new -= {"cache", "work"}  # the folders themselves
    assert not new, f"written outside the cache: {sorted(new)[:10]}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"schemaVersion":2,"pad":"' + b"x" * (20 << 20) + b'"}', "larger than 4 MiB"),
        (deep_json(), "nests deeper"),
        (
            b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", '
            b'"config": {"mediaType": "x", "digest": "sha256:../../etc", "size": 1}}',
            "invalid digest",
        ),
    ],
    ids=["manifest-20MB", "manifest-200k-deep", "config-digest-dotdot"],
)
def test_hostile_registry_over_plain_http(body: bytes, message: str, tmp_path: Path) -> None:
    """``analyze --tls-verify=false`` reads a plain-http loopback registry, and what it
    answers is held to the same caps as a layout's files."""
    (tmp_path / "home").mkdir()
    with hostile_registry(body) as host:
        args = ["analyze", "--tls-verify=false", f"docker://{host}/team/app:1"]
        proc = run_cli(tmp_path, args, memory_mib=700)
    check_outcome(proc, 1, message)
