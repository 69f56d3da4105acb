"""A poisoned cache: the next ``torchslim build`` (the real CLI) notices, evicts, warns,
fetches or rebuilds, and succeeds by itself with the image it built before."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from support.fakebuild import FakeService, build_once, fake_service
from support.wheels import make_wheel

from torchslim.build import BuildResult
from torchslim.cache import BlobStore
from torchslim.oci.layout import read_oci_layout

REPO = Path(__file__).resolve().parents[2]


def cli_build(service: FakeService, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "TORCHSLIM_CACHE": os.environ["TORCHSLIM_CACHE"],
    }
    return subprocess.run(
        [sys.executable, "-m", "torchslim.cli", "build", str(service.root), "-o", f"oci:{out}"]
        + list(extra),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _layer(result: BuildResult, name: str) -> str:
    return next(layer.digest for layer in result.layers if layer.name == name)


def _wheel_blob(service: FakeService, store: BlobStore) -> Path:
    import hashlib

    return store.path("sha256:" + hashlib.sha256(service.wheel.read_bytes()).hexdigest())


def poison_layer(service: FakeService, store: BlobStore, first: BuildResult) -> list[str]:
    _flip(store.path(_layer(first, "app")))
    return []


def replace_wheel(service: FakeService, store: BlobStore, first: BuildResult) -> list[str]:
    other = service.root.parent / "impostor"
    other.mkdir()
    impostor = make_wheel(other, name="torch", version="6.6.6")  # valid, and wrong
    _wheel_blob(service, store).write_bytes(impostor.read_bytes())
    return ["--no-slim"]  # another layer key: the wheels are installed again


def corrupt_wheel(service: FakeService, store: BlobStore, first: BuildResult) -> list[str]:
    blob = _wheel_blob(service, store)
    blob.write_bytes(blob.read_bytes()[:-200] + b"\0" * 200)  # once "zlib Error -3"
    return ["--no-slim"]


Poison = Callable[[FakeService, BlobStore, BuildResult], list[str]]


@pytest.mark.parametrize(
    "poison", [poison_layer, replace_wheel, corrupt_wheel], ids=lambda p: p.__name__
)
def test_next_build_after_a_poisoned_cache_succeeds_by_itself(
    poison: Poison, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))
    service = fake_service(tmp_path, monkeypatch)
    first = build_once(service, tmp_path / "first")
    extra = poison(service, BlobStore(), first)
    proc = cli_build(service, tmp_path / "second", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning: cached blob sha256:" in proc.stderr and "was corrupt" in proc.stderr
    assert "Traceback" not in proc.stderr
    image = read_oci_layout(tmp_path / "second")
    if not extra:  # the same inputs: the rebuilt image is the same image
        assert image.digest() == first.digest
    # Every layer reads back whole (digests checked); torch holds the locked wheel's files.
    names: set[str] = set()
    for layer in image.layers():
        with image.open_layer(layer) as blob, tarfile.open(fileobj=blob, mode="r|*") as tar:
            names |= {m.name for m in tar}
    assert any("torch-2.13.0.dist-info" in n for n in names), sorted(names)[:20]
    assert not any("6.6.6" in n for n in names)
    # And a third build finds a clean cache: no warning.
    again = cli_build(service, tmp_path / "third", *extra)
    assert again.returncode == 0 and "warning: cached blob" not in again.stderr, again.stderr
