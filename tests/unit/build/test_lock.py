"""The lock step's own table: what a warm build needs, including the signed release files."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fakebuild import pylock
from support.wheels import make_wheel

import torchslim.build.lock as lock_step
from torchslim import debian
from torchslim.build.plan import BuildOptions, plan_build
from torchslim.cache import BlobStore
from torchslim.config import QuietSteps, parse_config
from torchslim.debian.release import Release
from torchslim.deps.pipconf import IndexSettings

URL = "http://deb.debian.org/debian/dists/bookworm/InRelease"
DIGEST = "sha256:" + "5e" * 32


def test_the_release_files_resolved_from_are_kept_in_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))
    wheel = make_wheel(tmp_path, name="torch", version="2.13.0")
    monkeypatch.setattr(lock_step, "_uv_lock", lambda *a: pylock(wheel))
    calls: list[str] = []

    def resolve_signed(spec: debian.DebianSpec, *a: object) -> object:
        calls.append(spec.suite)
        release = Release(spec.suite, spec.suite, "12", {}, {}, url=URL, sha256=DIGEST)
        deb = debian.DebPackage("libc6", "2.36-9", "amd64", "pool/l/libc6.deb", DIGEST, 1)
        return [deb], {spec.suite: release}

    monkeypatch.setattr(debian, "resolve_signed", resolve_signed)
    (tmp_path / "requirements.txt").write_text("")
    data = {"name": "svc", "torch": "2.13.0", "cmd": ["x"], "requirements": "requirements.txt"}
    cfg = parse_config(data, file=tmp_path / "torchslim.toml", root=tmp_path)
    plan = plan_build(cfg, BuildOptions(), IndexSettings(), environ={}).plans[0]
    store = BlobStore(tmp_path / "blobs")
    kw = {"glibc": None, "base_pin": None, "store": store, "steps": QuietSteps()}
    first = lock_step.resolve(plan, None, **kw)  # type: ignore[arg-type]
    assert first.project.debian_releases == {"bookworm": {"url": URL, "sha256": DIGEST}}
    text = plan.lock_path.read_text()
    assert "[tool.torchslim.build.debian-releases.bookworm]" in text
    # A warm build reads them back from the lock, resolving (and fetching) nothing.
    existing = lock_step.read(plan)
    assert existing is not None and existing.debian_releases == first.project.debian_releases
    lock_step.resolve(plan, existing, **kw)  # type: ignore[arg-type]
    assert calls == ["bookworm"]
