"""The lock step: the torch family pairs with torch; its own table keeps what a warm build
needs, including the signed Debian release files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support.fakebuild import pylock
from support.wheels import make_wheel

import torchslim.build.lock as lock_step
import torchslim.torchmeta as torchmeta
from torchslim import debian
from torchslim.build.lock import family_mismatch
from torchslim.build.plan import BuildOptions, Plan, plan_build
from torchslim.cache import BlobStore
from torchslim.config import QuietSteps, parse_config
from torchslim.debian.release import Release
from torchslim.deps.lock import Lock, LockedWheel, Target
from torchslim.deps.pipconf import IndexSettings
from torchslim.errors import NetworkError
from torchslim.project.items import ProjectRequirements, RequirementItem
from torchslim.torchmeta import paired_torch, wheel_variant


def plan(tmp_path: Path, torch: str, variant: str) -> Plan:
    data = {"name": "s", "version": "1", "torch": torch, "variant": variant, "cmd": ["x"]}
    data["requirements"] = []
    cfg = parse_config(data, file=tmp_path / "torchslim.toml", root=tmp_path)
    return plan_build(cfg, BuildOptions(), IndexSettings(), environ={}).plans[0]


def lock(**versions: str) -> Lock:
    wheels = [
        LockedWheel(n, v, f"{n}-{v}.whl", "file:///x", "0" * 64, 1) for n, v in versions.items()
    ]
    return Lock(packages=tuple(wheels))


@pytest.mark.parametrize(
    ("package", "version", "torch", "variant"),
    [
        ("torchvision", "0.28.0", "2.13", "cu130"),  # PyPI's plain wheel: the CUDA default
        ("torchvision", "0.29.1+cpu", "2.14", "cpu"),
        ("torchvision", "0.24.1", "2.9", "cu128"),
        ("torchaudio", "2.9.1+cu126", "2.9", "cu126"),
    ],
)
def test_family_versions_and_variants(package: str, version: str, torch: str, variant: str) -> None:
    assert paired_torch(package, version) == torch
    assert wheel_variant(package, version) == variant


def test_a_cuda_torchvision_beside_a_cpu_torch_is_named_with_the_fix(tmp_path: Path) -> None:
    why = family_mismatch(
        plan(tmp_path, "2.13.0", "cpu"), lock(torch="2.13.0+cpu", torchvision="0.28.0")
    )
    assert why is not None
    assert why.startswith("torchvision 0.28.0 is the cu130 build but torch is 2.13.0+cpu")
    assert "https://download.pytorch.org/whl/cpu" in why and "torchvision==0.28.0+cpu" in why


def test_versions_that_do_not_pair(tmp_path: Path) -> None:
    why = family_mismatch(
        plan(tmp_path, "2.14.1", "cu130"), lock(torch="2.14.1", torchvision="0.28.0")
    )
    assert why is not None and "built for torch 2.13, not torch 2.14.1" in why


def test_matching_pairs_pass(tmp_path: Path) -> None:
    cuda = plan(tmp_path, "2.14.1", "cu130")
    assert family_mismatch(cuda, lock(torch="2.14.1", torchvision="0.29.1")) is None
    cpu = plan(tmp_path, "2.13.0", "cpu")
    assert family_mismatch(cpu, lock(torch="2.13.0+cpu", torchvision="0.28.0+cpu")) is None
    assert family_mismatch(cpu, lock(torch="2.13.0+cpu", numpy="2.1.0")) is None


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


def test_torch_missing_from_the_users_indexes_and_the_pytorch_index_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's indexes lack the torch build, and the PyTorch index torchslim tries next
    cannot be reached: one line that says both, not "check your pip config"."""
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setattr(torchmeta, "wheel_index", lambda *a: "http://127.0.0.1:9/whl/cpu")
    (tmp_path / "simple").mkdir()  # the user's index: reachable, without torch
    (tmp_path / "simple/index.html").write_text("<html><body></body></html>\n")
    p = plan(tmp_path, "2.13.0", "cpu")
    p = dataclasses.replace(p, settings=IndexSettings(index_url=(tmp_path / "simple").as_uri()))
    with pytest.raises(NetworkError) as err:
        lock_step._uv_lock(p, Target(), QuietSteps())
    msg = str(err.value)
    assert msg.startswith("torch==2.13.0+cpu is not in your pip config's indexes or find-links")
    assert "http://127.0.0.1:9/whl/cpu, cannot be reached" in msg and "(--torch)" in msg
    assert "\n" not in msg


def test_indexes_a_lock_or_pyproject_names_reach_uv(tmp_path: Path) -> None:
    """A package pinned to a private index (a Poetry source, uv.lock's registry) is resolved
    from it; PyPI, the default, is not added (a pip config's mirror may stand for it)."""
    p = plan(tmp_path, "2.13.0", "cpu")
    items = (
        RequirementItem("inhouse==1.2.0", "poetry.lock", "pinned", index="file:///srv/corp/simple"),
        RequirementItem(
            "fastapi==0.115.0", "poetry.lock", "pinned", index="https://pypi.org/simple"
        ),
        RequirementItem("six==1.16.0", "poetry.lock", "pinned"),
    )
    p = dataclasses.replace(p, requirements=ProjectRequirements(prod=items, kind="pinned"))
    (written,) = lock_step._requirement_files(p, tmp_path)
    assert written.read_text().splitlines() == [
        "--extra-index-url file:///srv/corp/simple",
        "inhouse==1.2.0",
        "fastapi==0.115.0",
        "six==1.16.0",
    ]
