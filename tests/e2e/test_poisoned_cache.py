"""The example's real build after its cache was damaged: the Debian base layer, one .deb,
the torch layer and the torch wheel. The next build warns, fetches or rebuilds each,
and writes the same image as before."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from torchslim.cache import BlobStore

from .conftest import copy_example

pytestmark = [pytest.mark.e2e, pytest.mark.network]


def torchslim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torchslim.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    _replace(path, bytes(data))


def _replace(path: Path, data: bytes) -> None:
    """A new file in place of ``path``: the run's shared cache, linked, keeps its own."""
    path.unlink()
    path.write_bytes(data)


def test_the_build_after_a_damaged_cache_succeeds_by_itself(
    ts_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The damage goes to a linked copy of the shared cache: the other worker's builds
    # read the shared one at the same time.
    own = tmp_path / "cache"
    shutil.copytree(ts_cache, own, symlinks=True, copy_function=os.link)
    monkeypatch.setenv("TORCHSLIM_CACHE", str(own))
    ts_cache = own
    project = copy_example(tmp_path / "hello-torch")
    first = tmp_path / "first.json"
    proc = torchslim("build", str(project), "-o", f"oci:{tmp_path / 'a'}", "--json", str(first))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(first.read_text())
    layers = {layer["name"]: layer["digest"] for layer in report["layers"]}
    lock = (project / "pylock.toml").read_text()
    store = BlobStore(ts_cache)
    _flip(store.path(layers["base"]))  # the Debian base layer: assembled again
    _flip(store.path(layers["torch"]))  # the torch layer: installed again
    torch = next(p for p in tomllib.loads(lock)["packages"] if p["name"] == "torch")
    wheel_blob = store.path("sha256:" + torch["wheels"][0]["hashes"]["sha256"])
    if wheel_blob.exists():
        _replace(wheel_blob, wheel_blob.read_bytes()[:-4096])  # once "zlib Error -3"
    debs = sorted(p for p in store.root.iterdir() if p.stat().st_size > 100_000)
    _flip(debs[0])  # some large cached blob: a .deb or a wheel, either is fetched again

    second = tmp_path / "second.json"
    proc = torchslim("build", str(project), "-o", f"oci:{tmp_path / 'b'}", "--json", str(second))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("warning: cached blob") >= 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads(second.read_text())["digest"] == report["digest"]  # the same image
