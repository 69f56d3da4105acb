"""Files an ``at_install`` rule removes are never written (``InstallSkips``); the result
must be the tree, RECORD and ledger of writing them and slimming afterwards, byte for byte.
Real wheels through ``installer``; the suite-word scan agrees with the regex it replaced."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from support.wheels import make_wheel

from torchslim.deps.install import Scheme, install_wheel
from torchslim.slim.apply import InstallSkips, slim_tree
from torchslim.slim.ledger import Ledger
from torchslim.slim.rules import RULES
from torchslim.slim.site import _suite_words

SITE = "/usr/local/lib/python3.11/dist-packages"
SCHEME = Scheme.debian("3.11")
FILES = {
    "torch/__init__.py": b"import torch.nn\n",
    "torch/nn.py": b"X = 1\n",
    "torch/nn.pyi": b"X: int\n" * 50,  # type-stubs
    "torch/include/ATen/core.h": b"#pragma once\n" * 80,  # torch-headers
    "torch/include/c10/util.h": b"int f();\n",
    "torch/share/cmake/Torch/TorchConfig.cmake": b"set(X 1)\n",  # torch-cmake-config
    "torch/lib/libfoo.a": b"!<arch>\n",  # static-libraries
    "torch/nn.pyc": b"\x00" * 40,  # pycache (installer itself drops __pycache__/)
    "torch/test/test_api": b"\x7fELF test binary",  # torch-test-binaries: not at install
    "torch/tests/test_x.py": b"def test_x():\n    pass\n",  # guarded: written, then judged
}


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    } | {p.relative_to(root).as_posix() + "/": "dir" for p in root.rglob("*") if p.is_dir()}


def build(tmp: Path, *, skipping: bool, keep: list[str], profile: str = "inference") -> tuple[
    dict[str, str], dict[str, object], dict[str, str], dict[str, tuple[str, int]]
]:  # fmt: skip
    wheel = make_wheel(tmp / "wheels", "torch", extra=FILES)
    root = tmp / "root"
    skip = InstallSkips(profile, keep, SITE) if skipping else None
    skipped: dict[str, tuple[str, int]] = {}
    install_wheel(wheel, root, SCHEME, "/usr/bin/python3", skip=skip, skipped=skipped)
    ledger = Ledger()
    by_rule = slim_tree(root, SITE, profile=profile, keep=keep, ledger=ledger, skipped=skipped)
    return tree(root), ledger.to_dict(), by_rule, skipped


@pytest.mark.parametrize(
    ("profile", "keep"), [("inference", []), ("inference", ["torch/include/c10"]), ("compile", [])]
)
def test_not_writing_equals_writing_then_removing(
    tmp_path: Path, profile: str, keep: list[str]
) -> None:
    (tmp_path / "a" / "wheels").mkdir(parents=True)
    (tmp_path / "b" / "wheels").mkdir(parents=True)
    after, ledger, by_rule, skipped = build(tmp_path / "a", skipping=True, keep=keep,
                                            profile=profile)  # fmt: skip
    before, ledger0, by_rule0, none = build(tmp_path / "b", skipping=False, keep=keep,
                                            profile=profile)  # fmt: skip
    assert none == {}
    assert after == before  # the same files, bytes, folders and RECORD
    assert ledger == ledger0 and by_rule == by_rule0
    held = {p.removeprefix(SITE + "/"): rule for p, (rule, _) in skipped.items()}
    if profile == "compile":  # headers and CMake files stay under compile: written
        assert held == {
            "torch/nn.pyi": "type-stubs",
            "torch/lib/libfoo.a": "static-libraries",
            "torch/nn.pyc": "pycache",
        }
        return
    expected = {
        "torch/nn.pyi": "type-stubs",
        "torch/include/ATen/core.h": "torch-headers",
        "torch/include/c10/util.h": "torch-headers",
        "torch/share/cmake/Torch/TorchConfig.cmake": "torch-cmake-config",
        "torch/lib/libfoo.a": "static-libraries",
        "torch/nn.pyc": "pycache",
    }
    if keep:  # a keep glob is written, and stays
        del expected["torch/include/c10/util.h"]
        assert "usr/local/lib/python3.11/dist-packages/torch/include/c10/util.h" in after
    assert held == expected
    assert skipped[SITE + "/torch/include/ATen/core.h"][1] == len(
        FILES["torch/include/ATen/core.h"]
    )
    # Rules that are not at_install (test binaries, guarded test suites) were written and
    # then removed by slim_tree, as before.
    assert by_rule[SITE + "/torch/test/test_api"] == "torch-test-binaries"


def test_skipped_files_are_in_record_until_slimming_books_them(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    wheel = make_wheel(tmp_path / "wheels", "torch", extra=FILES)
    root = tmp_path / "root"
    skipped: dict[str, tuple[str, int]] = {}
    skip = InstallSkips("inference", [], SITE)
    install_wheel(wheel, root, SCHEME, "/usr/bin/python3", skip=skip, skipped=skipped)
    site = root / SITE.lstrip("/")
    record = (site / "torch-1.0.dist-info/RECORD").read_text()
    assert "torch/nn.pyi,sha256=" in record and not (site / "torch/nn.pyi").exists()
    assert not (site / "torch/include").exists()
    slim_tree(root, SITE, profile="inference", ledger=Ledger(), skipped=skipped)
    assert "torch/nn.pyi" not in (site / "torch-1.0.dist-info/RECORD").read_text()


def test_only_unguarded_rules_are_applied_at_install() -> None:
    for rule in RULES:
        if rule.at_install:
            assert rule.guard is None and rule.action == "remove", rule.id
    skip = InstallSkips("inference", [], SITE)
    assert skip("/usr/local/bin/tool") is None  # outside site-packages: never
    assert skip(SITE + "/pkg-1.0.dist-info/x.pyi") is None  # metadata is protected
    assert skip(SITE + "/torch/nn.py") is None
    assert skip(SITE + "/pkg/tests/x.pyi") == "type-stubs"


SUITE_WORD = re.compile(r"\b(?:test|tests)\b")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "test",
        "tests",
        "from .tests import helpers\nimport pkg.test.util as u\n",
        "latest testing test_x x_test pytest tests2 étest testé",
        "a.tests.b test.tests tests.test",
        "# test\n'tests'\n(test)",
    ],
)
def test_suite_words_agree_with_the_regex(text: str) -> None:
    assert _suite_words(text) == [m.span() for m in SUITE_WORD.finditer(text)]
