"""When undoing slimming can help a failed proof (the undoing itself: tests/unit/slim)."""

from __future__ import annotations

from typing import Any

from torchslim.build import reverts
from torchslim.config import QuietSteps
from torchslim.proof.result import Failure

SITE = "/usr/local/lib/python3.11/dist-packages"


def test_only_missing_files_and_modules_can_be_slimming() -> None:
    may = reverts.may_be_slimming
    assert may(Failure("library", f"{SITE}/x/libx.so", "OSError: bad ELF"))
    assert may(Failure("extension", f"{SITE}/x/_x.so", "ImportError: y"))
    assert may(Failure("torch", "torch", "ImportError: libtorch_cpu.so"))
    assert may(Failure("entry", "app.main:app", "app.main: ModuleNotFoundError: No module "
                       "named 'numpy.testing' (/app/app/main.py, line 3)"))  # fmt: skip
    assert not may(Failure("entry", "app.main:app", "app.main: ValueError: no such file"))
    assert not may(Failure("cmd", "gunicorn", "not on the image's PATH"))
    assert not may(Failure("smoke", "python3 -c x", "exited 1: AssertionError"))


def test_a_project_failure_is_reported_without_restaging(tmp_path: Any) -> None:
    """No wheel is fetched, installed or slimmed again when nothing slimming did can matter
    (every argument but the failures would fail if used)."""
    unused: Any = object()
    failures = [
        Failure("entry", "app.main:app", "app.main: ValueError: bad path"),
        Failure("cmd", "gunicorn", "not on PATH"),
    ]
    found = reverts.find_reverts(unused, unused, unused, [], failures, [], unused, QuietSteps())
    assert found == []
