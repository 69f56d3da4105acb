"""A service that builds without a network: a base made here from the host's Python as an OCI
layout, a tiny real ``torch`` wheel, and a lock made once in-process (uv replaced), so
later builds (in-process or the real CLI) read the lock and touch only the cache."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import torchslim.build.lock as lock_step
from support.proofroot import make_root
from support.wheels import make_wheel
from torchslim.build import BuildOptions, BuildResult, build, plan_build, publish
from torchslim.cache import BlobStore
from torchslim.config import load_config
from torchslim.deps.lock import Target
from torchslim.deps.pipconf import IndexSettings
from torchslim.oci.empty import empty_image
from torchslim.oci.layer import write_layer_from_dir
from torchslim.oci.layout import write_oci_layout
from torchslim.oci.mutate import append_layers, with_config


@dataclass(frozen=True)
class FakeService:
    root: Path  # the project (torchslim.toml, app/, model.bin, pylock.toml after a build)
    wheel: Path  # the torch wheel the lock points at (a file:// URL)


def base_layout(tmp: Path) -> Path:
    """A linux/amd64 base made from this host's Python (so the prove step can run it), as
    an OCI layout named ``3.11``."""
    store = BlobStore(tmp / "base-blobs")
    root = make_root(tmp / "base-root")
    shutil.rmtree(root / "app")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/sbin/nologin\n")  # no app user yet
    layer = write_layer_from_dir(root, store)
    image = with_config(
        append_layers(empty_image("amd64"), [(layer, store, "fake base")]),
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    dest = tmp / "base"
    write_oci_layout(image, dest, ref_name="3.11")
    return dest


def _pylock(wheel: Path) -> str:
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return (
        'lock-version = "1.0"\ncreated-by = "test"\n\n[[packages]]\nname = "torch"\n'
        f'version = "2.13.0"\n\n[[packages.wheels]]\nname = "{wheel.name}"\n'
        f'url = "{wheel.as_uri()}"\nsize = {wheel.stat().st_size}\n'
        f'upload-time = 2023-11-14T22:13:20Z\nhashes = {{sha256 = "{sha}"}}\n'
    )


def fake_service(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> FakeService:
    """The project, with ``uv`` replaced by a lock of the fake torch wheel (in this process)."""
    base = base_layout(tmp)
    root = tmp / "svc"
    (root / "app" / "svc").mkdir(parents=True)
    (root / "app" / "svc" / "__init__.py").write_text("VALUE = 42\n")
    (root / "app" / "svc" / "__main__.py").write_text("from app.svc import VALUE\n")
    (root / "model.bin").write_bytes(b"\1" * 5000)
    (root / "requirements.txt").write_text("")
    (root / "torchslim.toml").write_text(
        'name = "svc"\nversion = "1.0"\ntorch = "2.13.0"\napp = "app"\n'
        'model = ["model.bin"]\ncmd = ["python3", "-m", "app.svc"]\nport = 8000\n'
        f'health = "/health"\nbase = "oci:{base}:3.11"\n'
    )
    (tmp / "wheels").mkdir()
    wheel = make_wheel(tmp / "wheels", name="torch", version="2.13.0")

    def fake_uv_lock(plan: object, target: Target, steps: object) -> str:
        return _pylock(wheel)

    monkeypatch.setattr(lock_step, "_uv_lock", fake_uv_lock)
    return FakeService(root, wheel)


def build_once(service: FakeService, output: Path) -> BuildResult:
    """One build and publish in this process: writes the lock, warms the cache."""
    cfg = load_config(service.root)
    bp = plan_build(cfg, BuildOptions(output=f"oci:{output}"), IndexSettings(), environ={})
    result = build(bp.plans[0])
    publish(bp, [result])
    return result
