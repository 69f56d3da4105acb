"""The base step: torchslim's Debian base layer, or any other image to build on.

A base other than Debian is ``oci:DIR[:ref]``, ``docker-archive:FILE`` or a registry
reference (``python:3.11-slim``, ``docker://127.0.0.1:5000/team/base:v1``). Its layers
are reused byte for byte, a registry base is pinned by digest in the lock, and the probe
that reads its files is cached by manifest digest. The app user is added when missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchslim import debian
from torchslim.atomic import write_atomic
from torchslim.build.dates import Dates
from torchslim.build.layercache import LayerCache
from torchslim.build.plan import Plan
from torchslim.build.probe import BaseProbe, probe_image, require_python
from torchslim.build.report import LayerReport
from torchslim.cache import BlobStore, cache_root
from torchslim.config import Steps
from torchslim.errors import BuildError, ConfigError
from torchslim.oci.empty import empty_image
from torchslim.oci.image import Image
from torchslim.oci.layer import Layer, Ownership
from torchslim.oci.transport import Location, open_image
from torchslim.sbom.attribution import removals_from_skipped
from torchslim.slim.pyc import precompile

LIB_DIRS = ("usr/lib", "usr/lib64", "usr/local/lib", "lib", "lib64")


@dataclass
class OpenedBase:
    """An external base, opened (pinned by digest) and probed; nothing for the Debian base."""

    image: Image | None = None
    probe: BaseProbe | None = None

    @property
    def glibc(self) -> str | None:
        return self.probe.glibc if self.probe is not None else None

    def pin(self, plan: Plan) -> dict[str, str] | None:
        """What the lock records of a registry base: the reference and its digest."""
        if self.image is None or plan.base is None or plan.base.transport != "docker":
            return None
        return {"ref": plan.cfg.base, "digest": self.image.digest()}


@dataclass
class Base:
    """What the image starts from and what the rest of the build needs to know of it."""

    image: Image  # the empty image (Debian base) or the external base
    new: list[tuple[Layer, LayerReport]]  # layers this build adds for the OS (base, user)
    reports: list[LayerReport]  # the external base's own layers, as one report line
    rootfs: debian.RootfsInfo
    libs: list[str] = field(default_factory=list)  # shared-library paths, for the closure


def open_base(plan: Plan, pinned: dict[str, str], steps: Steps) -> OpenedBase:
    """Open and probe an external base; a registry base at the digest the lock pinned."""
    loc = plan.base
    if loc is None:
        return OpenedBase()
    if loc.transport == "docker" and pinned.get("ref") == plan.cfg.base and pinned.get("digest"):
        loc = Location("docker", f"{loc.target.split('@')[0]}@{pinned['digest']}")
    if loc.is_file and not loc.path.exists():
        raise ConfigError(
            f"{plan.cfg.file}: key `base` = {plan.cfg.base!r}: {loc.path} does not exist; "
            "build or copy the base there, or fix the path"
        )
    steps.step(f"Opening base {loc}")
    image = open_image(loc, platform=plan.platform, tls_verify=plan.tls_verify)
    got = image.platform
    if (got.os, got.arch) != (plan.platform.os, plan.platform.arch):
        raise BuildError(
            f"base {plan.cfg.base!r} is a {got} image but {plan.platform} was asked for; "
            "pick a base built for your platform or change --platform"
        )
    probe = cached_probe(image)
    asked = plan.overrides.origin("python") if plan.overrides.python else "the project"
    require_python(
        probe, f"{plan.cfg.file}: key `base` = {plan.cfg.base!r}", plan.cfg.python, asked
    )
    if probe.cuda_libs and plan.cfg.variant != "cpu":
        steps.warn(
            f"base {plan.cfg.base} already carries {probe.cuda_bytes / 1e6:.0f} MB of CUDA "
            "libraries; torch's nvidia-* wheels bring them again: use a base without CUDA "
            "(nvidia/cuda:*-base, python:3.X-slim or debian)"
        )
    return OpenedBase(image, probe)


def cached_probe(image: Image) -> BaseProbe:
    """Probe ``image`` (streaming every layer), or reuse the probe of that manifest digest."""
    path = cache_root() / "probes" / (image.digest().removeprefix("sha256:") + ".json")
    try:
        return BaseProbe.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError):
        pass
    probe = probe_image(image)
    write_atomic(path, json.dumps(probe.to_dict(), sort_keys=True))
    return probe


def user_files(probe: BaseProbe, uid: int, name: str, home: str) -> dict[str, str] | None:
    """``/etc/passwd`` and ``/etc/group`` with the app user added, or None if it exists.

    A layer replaces a file whole, so the base's lines are kept as they were.
    """
    if probe.user_for(uid) is not None:
        return None
    taken = {n for n, _ in probe.users.values()}
    user = name if name not in taken else f"{name}{uid}"
    passwd = probe.passwd_text
    if passwd and not passwd.endswith("\n"):
        passwd += "\n"
    passwd += f"{user}:x:{uid}:{uid}::{home}:/sbin/nologin\n"
    group = probe.group_text
    if uid not in probe.groups:
        if group and not group.endswith("\n"):
            group += "\n"
        group += f"{user}:x:{uid}:\n"
    return {"etc/passwd": passwd, "etc/group": group}


def _library_paths(root: Path) -> list[str]:
    """Image paths of shared libraries (``*.so*``) under the system library directories."""
    out: list[str] = []
    for top in LIB_DIRS:
        base = root / top
        if base.is_symlink() or not base.is_dir():
            continue
        for dirpath, _, filenames in os.walk(base):
            for name in filenames:
                if ".so" in name:
                    out.append("/" + (Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(out)


def _debian_base(
    plan: Plan,
    packages: list[debian.DebPackage],
    dates: Dates,
    layers: LayerCache,
    store: BlobStore,
    steps: Steps,
) -> Base:
    spec = plan.debian
    mtime = dates.layer_epoch()
    key = layers.key("base", mtime, dataclasses.asdict(spec), [p.sha256 for p in packages])
    owner = Ownership(overrides={spec.home.strip("/"): (spec.uid, spec.uid)})

    def fill(root: Path) -> dict[str, Any]:
        steps.step(f"Assembling Debian {spec.suite} base ({len(packages)} packages)")
        info = debian.assemble(spec, packages, root, store, steps.progress)
        # Debian compiles the stdlib in a maintainer script we do not run.
        precompile(root, f"/usr/lib/python{info.python_version}", info.python_version)
        return {
            "libs": _library_paths(root),
            # What the unpacker left out (docs, man pages, locales), per package: the SBOM's.
            "removals": [r.to_json() for r in removals_from_skipped(info.skipped)],
            "rootfs": {
                "python_exe": info.python_exe,
                "python_version": info.python_version,
                "site_packages": info.site_packages,
                "glibc": info.glibc,
            },
        }

    layer, report, extra = layers.get_or_build("base", key, fill, mtime=mtime, owner=owner)
    r = extra["rootfs"]
    info = debian.RootfsInfo(
        python_exe=r["python_exe"],
        python_version=r["python_version"],
        site_packages=r["site_packages"],
        glibc=r["glibc"],
        packages=packages,
    )
    image = empty_image(arch=plan.platform.arch, os=plan.platform.os)
    return Base(image, [(layer, report)], [], info, list(extra.get("libs", [])))


def _user_layer(
    plan: Plan, probe: BaseProbe, dates: Dates, layers: LayerCache
) -> tuple[Layer, LayerReport] | None:
    """The app user for a base that lacks it: its passwd and group, plus its home."""
    spec = plan.debian
    files = user_files(probe, spec.uid, spec.user, spec.home)
    if files is None:
        return None
    mtime = dates.layer_epoch()
    key = layers.key("user", mtime, files, spec.home)
    home = spec.home.strip("/")

    def fill(root: Path) -> dict[str, Any]:
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
            (root / rel).chmod(0o644)
        (root / home).mkdir(parents=True, mode=0o755)
        return {}

    owner = Ownership(overrides={home: (spec.uid, spec.uid)})
    layer, report, _ = layers.get_or_build("user", key, fill, mtime=mtime, owner=owner)
    return layer, report


def base_layers(
    plan: Plan,
    opened: OpenedBase,
    packages: list[debian.DebPackage],
    dates: Dates,
    layers: LayerCache,
    store: BlobStore,
    steps: Steps,
) -> Base:
    """The Debian base layer, or the external base plus the app user when it lacks one."""
    if opened.image is None or opened.probe is None:
        return _debian_base(plan, packages, dates, layers, store, steps)
    image, probe = opened.image, opened.probe
    size = sum(layer.descriptor.size for layer in image.layers())
    report = LayerReport(
        f"base ({len(image.layers())} layers)", image.digest(), size, -1, True, 0.0
    )
    info = debian.RootfsInfo(
        python_exe=probe.python_exe or "",
        python_version=probe.python_version or "",
        site_packages=probe.site_packages or "",
        glibc=probe.glibc or "",
        packages=[],
    )
    user = _user_layer(plan, probe, dates, layers)
    return Base(image, [user] if user else [], [report], info, list(probe.libs))
