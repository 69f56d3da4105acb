"""A build that assembles again starts from the Python tree it staged: a copy that the
census's steps (files removed, the tree split into layers) change without touching what
is kept, with bookings of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from torchslim.build.python import KeptStages, _RoutingLedger, _Stage
from torchslim.slim.ledger import Ledger, Revert

SITE = "/usr/local/lib/python3.11/dist-packages"


def _stage(root: Path) -> _Stage:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("x = 1\n")
    (root / "pkg" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"pyc")
    (root / "pkg" / "link").symlink_to("__init__.py")
    (root / "pkg").chmod(0o750)
    owner = {f"{SITE}/pkg/__init__.py": "deps"}
    ledgers = {"deps": Ledger(), "torch": Ledger()}
    routing = _RoutingLedger(ledgers, owner, SITE, {})
    routing.add("pycache", f"{SITE}/pkg/old.pyc", 10)
    return _Stage(root, owner, {}, ledgers, routing)


def test_a_kept_stage_is_restored_whole_and_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))
    stages = KeptStages()
    key = KeptStages.key([Revert("strip-symbols", "/x.so", 1, "why")])
    assert stages.restore(key, tmp_path / "none") is None
    stages.keep(key, _stage(tmp_path / "first"))
    assert stages.restore(KeptStages.key([]), tmp_path / "other") is None  # another key

    for n in (1, 2):
        root = tmp_path / f"again{n}"
        root.mkdir()
        got = stages.restore(key, root)
        assert got is not None
        init = root / "pkg" / "__init__.py"
        assert init.read_text() == "x = 1\n" and os.readlink(root / "pkg" / "link") == "__init__.py"
        assert (root / "pkg").stat().st_mode & 0o777 == 0o750
        assert init.stat().st_ino == (tmp_path / "first" / "pkg" / "__init__.py").stat().st_ino
        # The census's steps on the copy: a .pyc removed and booked, a file moved away.
        (root / "pkg" / "__pycache__" / "__init__.cpython-311.pyc").unlink()
        got.routing.add("unimported-bytecode", f"{SITE}/pkg/__pycache__/x.pyc", 3)
        os.replace(init, tmp_path / f"moved{n}")
        assert got.ledgers["deps"] is got.routing.per_layer["deps"]
        assert [r.rule for r in got.routing.removals["deps"]] == ["pycache", "unimported-bytecode"]
    stages.close()
    assert not list((tmp_path / "cache" / "tmp").iterdir())
