"""The prove step's own pieces (the proof itself is tested in tests/unit/runtime)."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchslim.build.plan import BuildOptions, plan_build
from torchslim.build.prove import ProofError, _with_packages, raise_for_failures
from torchslim.config import parse_config
from torchslim.deps.pipconf import IndexSettings
from torchslim.proof.result import Failure, Proof

SITE = "usr/local/lib/python3.11/dist-packages"


def test_failing_files_are_named_with_their_package(tmp_path: Path) -> None:
    """A library missing upstream is reported with the distribution that needs it."""
    site = tmp_path / SITE
    (site / "cv2").mkdir(parents=True)
    (site / "cv2" / "cv2.abi3.so").write_bytes(b"\x7fELF")
    (site / "opencv_python.libs").mkdir()
    (site / "opencv_python.libs" / "libQt5Core-39545cc7.so.5.15.0").write_bytes(b"\x7fELF")
    dist = site / "opencv_python-4.8.1.78.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: opencv-python\nVersion: 4.8.1.78\n"
    )
    (dist / "RECORD").write_text(
        "cv2/cv2.abi3.so,sha256=x,4\nopencv_python.libs/libQt5Core-39545cc7.so.5.15.0,sha256=y,4\n"
    )
    gl = "ImportError: libGL.so.1: cannot open shared object file: No such file or directory"
    failures = (
        Failure("extension", f"/{SITE}/cv2/cv2.abi3.so", gl),
        Failure("library", f"/{SITE}/opencv_python.libs/libQt5Core-39545cc7.so.5.15.0", "x"),
        Failure("library", "/usr/lib/x86_64-linux-gnu/libfoo.so.1", "y"),
        Failure("cmd", "gunicorn", "not on PATH"),
    )
    named = _with_packages(failures, tmp_path)
    assert [f.package for f in named] == ["opencv-python 4.8.1.78"] * 2 + [None, None]
    assert named[0].line() == f"extension /{SITE}/cv2/cv2.abi3.so (opencv-python 4.8.1.78): {gl}"
    back = Proof.from_dict(Proof("failed", "userns+chroot", failures=named).to_dict())
    assert back.failures == named


def test_a_project_script_in_cmd_is_named_with_the_command_that_runs_it(tmp_path: Path) -> None:
    """`cmd = ["serve", …]` names the project's console script, which only `pip install .`
    would have put on PATH: the error gives the cmd that runs it from the shipped files."""

    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "svc"\nversion = "1"\n[project.scripts]\nserve = "svc.cli:main"\n'
    )
    data = {"name": "svc", "torch": "2.13.0", "cmd": ["serve", "--port", "8000"]}
    cfg = parse_config(data, file=tmp_path / "torchslim.toml", root=tmp_path)
    plan = plan_build(cfg, BuildOptions(), IndexSettings(), environ={}).plans[0]
    proof = Proof("failed", "userns+chroot", failures=(Failure("cmd", "serve", "not on PATH"),))
    with pytest.raises(ProofError) as err:
        raise_for_failures(proof, plan)
    fix = '"python3", "-c", "import sys; from svc.cli import main; sys.exit(main())"'
    assert "serve is a script of pyproject.toml" in str(err.value)
    assert f'cmd = [{fix}, "--port", "8000"]' in str(err.value)
    other = Proof("failed", "userns+chroot", failures=(Failure("cmd", "gunicorn", "not on PATH"),))
    with pytest.raises(ProofError) as err:
        raise_for_failures(other, plan)
    assert "script of pyproject.toml" not in str(err.value)
