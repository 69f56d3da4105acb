"""A service that builds without a network: a base made here from the host's Python as an OCI
layout, a tiny real ``torch`` wheel, and a lock made once in-process (uv replaced), so
later builds (in-process or the real CLI) read the lock and touch only the cache.

``make_service`` is the same for two platforms (linux/amd64 and linux/arm64) and any
wheels."""

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
from torchslim.build.plan import BuildPlan
from torchslim.cache import BlobStore
from torchslim.config import load_config
from torchslim.deps.lock import Target
from torchslim.deps.pipconf import IndexSettings
from torchslim.oci.empty import empty_image
from torchslim.oci.layer import write_layer_from_dir
from torchslim.oci.layout import write_oci_index_layout, write_oci_layout
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
    return pylock(wheel)


# The fake service serves for real: the proof starts it and asks /health.
SERVER = """\
import http.server
import signal
import sys

from app.svc import VALUE

# As uvicorn and gunicorn do: as PID 1 (the proof runs it so) it stops on SIGTERM.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/health"
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"value %d" % VALUE)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""


def fake_service(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> FakeService:
    """The project, with ``uv`` replaced by a lock of the fake torch wheel (in this process)."""
    base = base_layout(tmp)
    root = tmp / "svc"
    (root / "app" / "svc").mkdir(parents=True)
    (root / "app" / "svc" / "__init__.py").write_text("VALUE = 42\n")
    (root / "app" / "svc" / "__main__.py").write_text(SERVER)
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


def make_base_layout(tmp_path: Path) -> Path:
    """An OCI layout holding a python:slim-like base for linux/amd64 and linux/arm64."""
    store = BlobStore(tmp_path / "base-blobs")
    root = make_root(tmp_path / "base-root")
    shutil.rmtree(root / "app")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/sbin/nologin\n")
    layer = write_layer_from_dir(root, store)
    # arm64 finds its libc where an arm64 Debian keeps it (x86 bytes: the probe reads only
    # the version string; nothing arm64 runs here).
    arm = tmp_path / "arm-libc" / "usr/lib/aarch64-linux-gnu"
    arm.mkdir(parents=True)
    shutil.copyfile(next(root.glob("usr/lib/x86_64-linux-gnu/libc.so.6")), arm / "libc.so.6")
    arm_layer = write_layer_from_dir(tmp_path / "arm-libc", store)
    images = [
        with_config(
            append_layers(empty_image(arch), [(lay, store, "fake base") for lay in layers]),
            env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        )
        for arch, layers in (("amd64", [layer]), ("arm64", [layer, arm_layer]))
    ]
    dest = tmp_path / "base"
    write_oci_index_layout(images, dest, ref_name="3.11")
    return dest


def pylock(*wheels: Path) -> str:
    """A PEP 751 lock of ``wheels`` (``name-version-py3-none-any.whl``)."""
    text = 'lock-version = "1.0"\ncreated-by = "test"\n'
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        text += (
            f'\n[[packages]]\nname = "{name}"\nversion = "{version}"\n\n'
            f'[[packages.wheels]]\nname = "{wheel.name}"\nurl = "{wheel.as_uri()}"\n'
            f"size = {wheel.stat().st_size}\nupload-time = 2023-11-14T22:13:20Z\n"
            f'hashes = {{sha256 = "{sha}"}}\n'
        )
    return text


def make_service(
    root: Path, base_layout: Path, wheels: list[Path], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A service at ``root`` on ``base_layout`` whose lock resolves to ``wheels``."""
    (root / "app" / "svc").mkdir(parents=True)
    (root / "app" / "svc" / "__init__.py").write_text("VALUE = 42\n")
    (root / "app" / "svc" / "__main__.py").write_text(SERVER)
    (root / "model.bin").write_bytes(b"\0" * 1000)
    (root / "requirements.txt").write_text("")
    (root / "torchslim.toml").write_text(
        'name = "svc"\nversion = "1.0"\ntorch = "2.13.0"\napp = "app"\n'
        'model = ["model.bin"]\ncmd = ["python3", "-m", "app.svc"]\n'
        'port = 8000\nhealth = "/health"\n'
        f'base = "oci:{base_layout}:3.11"\nplatform = ["linux/amd64", "linux/arm64"]\n'
    )
    monkeypatch.setattr(lock_step, "_uv_lock", lambda *a: pylock(*wheels))
    return root


def plan_for(project: Path, **opts: object) -> BuildPlan:
    return plan_build(load_config(project), BuildOptions(**opts), IndexSettings(), environ={})  # type: ignore[arg-type]
