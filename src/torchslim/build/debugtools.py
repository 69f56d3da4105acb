"""The debug target's one extra layer: a static shell and coreutils, and py-spy.

``build --target debug`` is the service image plus this layer (as distroless's ``:debug``
images are): every service layer is the same blob, so a node that runs the service pulls
only the tools. Nothing here runs at start; the user, command, health check and labels are
the service's.

- ``busybox-static`` from the Debian archive the base comes from (the plan's suite and
  mirror; bookworm for a registry base), taken from the signed index and checked against
  its sha256. The binary goes to ``/usr/local/bin/busybox`` with one link per applet
  (``sh``, ``ls``, ``cat`` …) beside it: ``/usr/local/bin`` is first on the image's PATH,
  and no file of the base is replaced.
- ``py-spy`` from its PyPI wheel (a static binary), pinned here by sha256 and fetched like
  any locked wheel (the configured indexes and find-links serve it too).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchslim.atomic import write_atomic
from torchslim.build.layercache import LayerCache, input_key, staging
from torchslim.build.plan import Plan
from torchslim.build.report import LayerReport
from torchslim.cache import BlobStore, cache_root
from torchslim.config import Steps
from torchslim.debian.control import Relation, format_stanza
from torchslim.debian.deb import unpack_deb
from torchslim.debian.fetch import Fetcher
from torchslim.debian.index import load_index
from torchslim.debian.resolver import suites_for, to_deb
from torchslim.debian.rootfs import fetch_debs
from torchslim.debian.spec import DebianSpec, DebPackage
from torchslim.deps.pylock import Lock, LockedWheel
from torchslim.deps.wheels import fetch_wheels
from torchslim.errors import BuildError, ResolveError
from torchslim.oci.layer import Layer

LAYER = "debug-tools"
TOOLS_DIR = "usr/local/bin"
BUSYBOX = "busybox-static"
REGISTRY_BASE_SUITE = "bookworm"  # busybox-static is static: any suite runs on any base
# Applets linked when the binary's own list cannot be read (the usual shell and coreutils).
FALLBACK_APPLETS = (
    "sh", "ash", "cat", "chmod", "cp", "cut", "date", "df", "du", "echo", "env", "find",
    "free", "grep", "head", "hostname", "id", "kill", "less", "ln", "ls", "mkdir", "mv",
    "netstat", "nslookup", "ps", "pwd", "readlink", "rm", "sed", "sleep", "sort", "stat",
    "tail", "tar", "top", "touch", "tr", "uname", "vi", "wc", "wget", "which", "xargs",
)  # fmt: skip

_PYSPY_URL = "https://files.pythonhosted.org/packages/"
PY_SPY_VERSION = "0.4.3"
PY_SPY: dict[str, tuple[str, str, int]] = {  # arch → (path under _PYSPY_URL, sha256, size)
    "amd64": (
        "78/1f/651389a861f6148754443834a50dd576993257af5f645d4316ab94505267/"
        "py_spy-0.4.3-py2.py3-none-manylinux1_x86_64.manylinux_2_5_x86_64.whl",
        "8a4277225f470d394a85cca0cdd944bef87f0097b6f20150a6dd3ac2e92806b8",
        2936517,
    ),
    "arm64": (
        "60/c3/c9384da6992d64e0dffab551cda3d1e990de1a2685fcfcc16fc8e5a98b18/"
        "py_spy-0.4.3-py2.py3-none-manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
        "bbcec46930d464b3bfc142d6d02ade4dd8ad5627823263b3eff0280e80c7c132",
        2819927,
    ),
}
_TABLE = b"[\0[[\0"
_APPLET = re.compile(rb"^[a-z0-9\[][a-z0-9_.\[\]-]*$")


@dataclass(frozen=True)
class ToolInputs:
    """What the tools layer is made of: the verified busybox-static .deb and py-spy wheel."""

    busybox: DebPackage
    busybox_deb: Path
    py_spy: LockedWheel
    py_spy_wheel: Path


def tools_spec(plan: Plan) -> DebianSpec:
    """The Debian archive the tools come from: the base's suite and mirror."""
    return DebianSpec(
        suite=plan.debian.suite or REGISTRY_BASE_SUITE,
        arch=plan.platform.arch,
        mirror=plan.debian.mirror,
        python=plan.debian.python,
    )


def py_spy_wheel(arch: str) -> LockedWheel:
    """The pinned py-spy wheel for ``arch`` (amd64 or arm64)."""
    if arch not in PY_SPY:
        raise BuildError(f"--target debug: py-spy has no wheel for {arch}; use amd64 or arm64")
    path, sha256, size = PY_SPY[arch]
    filename = path.rsplit("/", 1)[1]
    return LockedWheel("py-spy", PY_SPY_VERSION, filename, _PYSPY_URL + path, sha256, size)


def _pin_path(spec: DebianSpec) -> Path:
    key = input_key(BUSYBOX, spec.mirror, spec.suite, spec.arch).removeprefix("sha256:")
    return cache_root() / "debug-tools" / f"{key}.json"


def resolve_busybox(spec: DebianSpec, store: BlobStore, steps: Steps, relock: bool) -> DebPackage:
    """busybox-static from the signed index of ``spec``'s suite; the choice is kept in the
    cache (per mirror, suite and arch) until ``--relock``."""
    pin = _pin_path(spec)
    if not relock:
        try:
            return DebPackage.from_dict(json.loads(pin.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    steps.step(f"Resolving {BUSYBOX} in Debian {spec.suite} ({spec.arch})")
    with Fetcher(spec.mirror) as fetcher:
        index, _ = load_index(fetcher, suites_for(spec), spec.arch, store, steps.progress)
    found = index.best(Relation(BUSYBOX))
    if found is None:
        raise ResolveError(f"Debian {spec.suite} ({spec.arch}) has no {BUSYBOX} package")
    deb = to_deb(found)
    write_atomic(pin, json.dumps(deb.to_dict(), sort_keys=True))
    return deb


def tool_inputs(plan: Plan, store: BlobStore, steps: Steps) -> ToolInputs:
    """Resolve and fetch both tools into the store, each checked against its sha256."""
    spec = tools_spec(plan)
    busybox = resolve_busybox(spec, store, steps, plan.relock)
    fetch_debs(spec, [busybox], store, steps.progress)
    wheel = py_spy_wheel(plan.platform.arch)
    paths = fetch_wheels(Lock((wheel,)), store, plan.settings, steps.progress)
    return ToolInputs(busybox, store.path(busybox.sha256), wheel, paths[wheel.name])


def applets(binary: bytes) -> list[str]:
    """The applet names a busybox binary carries (its NUL-separated, sorted name table, which
    starts with ``[`` and ``[[``); the usual ones when the table is not found."""
    start = binary.find(_TABLE)
    while start >= 0:
        names = _names_at(binary, start)
        if "sh" in names:
            return names
        start = binary.find(_TABLE, start + 1)
    return list(FALLBACK_APPLETS)


def _names_at(binary: bytes, start: int) -> list[str]:
    names: list[str] = []
    for raw in binary[start : start + 64 * 1024].split(b"\0"):
        if not _APPLET.match(raw) or (names and raw.decode() <= names[-1]):
            break
        names.append(raw.decode())
    return names


def _busybox_binary(deb: Path, package: str) -> bytes:
    with staging("busybox") as scratch:
        unpack_deb(deb, scratch, package)
        for rel in ("usr/bin/busybox", "bin/busybox"):
            if (scratch / rel).is_file():
                return (scratch / rel).read_bytes()
    raise BuildError(f"{package} ({deb.name}) has no /bin/busybox; re-resolve with --relock")


def _py_spy_binary(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if re.fullmatch(r"[^/]+\.data/scripts/py-spy", name):
                return zf.read(name)
    raise BuildError(f"{wheel.name} has no py-spy binary (*.data/scripts/py-spy)")


def _put(root: Path, rel: str, data: bytes, mode: int) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def fill_tools(root: Path, inputs: ToolInputs) -> dict[str, Any]:
    """The layer's files: busybox and its applet links, py-spy, busybox-static's status."""
    busybox = _busybox_binary(inputs.busybox_deb, inputs.busybox.name)
    _put(root, f"{TOOLS_DIR}/busybox", busybox, 0o755)
    _put(root, f"{TOOLS_DIR}/py-spy", _py_spy_binary(inputs.py_spy_wheel), 0o755)
    linked = [a for a in applets(busybox) if a not in ("busybox", "py-spy")]
    for name in linked:
        (root / TOOLS_DIR / name).symlink_to("busybox")
    pkg = inputs.busybox
    status = {"Package": pkg.name, "Status": "install ok installed", **pkg.control}
    status.setdefault("Version", pkg.version)
    status.setdefault("Architecture", pkg.arch)
    _put(root, f"var/lib/dpkg/status.d/{pkg.name}", format_stanza(status).encode(), 0o644)
    for d in sorted(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()):
        d.chmod(0o755)
    return {"applets": len(linked), "busybox": pkg.version, "py-spy": inputs.py_spy.version}


def tools_layer(
    plan: Plan,
    mtime: int,
    layers: LayerCache,
    store: BlobStore,
    steps: Steps,
    inputs: Callable[[Plan, BlobStore, Steps], ToolInputs] | None = None,
) -> tuple[Layer, LayerReport]:
    """The ``debug-tools`` layer, cached by the digests of the .deb and the wheel
    (``inputs``: how they are found, :func:`tool_inputs` unless a caller says)."""
    got = (inputs or tool_inputs)(plan, store, steps)
    key = layers.key(LAYER, mtime, got.busybox.sha256, got.py_spy.digest)
    layer, report, _ = layers.get_or_build(
        LAYER, key, lambda root: fill_tools(root, got), mtime=mtime
    )
    return layer, report


__all__ = ["LAYER", "ToolInputs", "applets", "tool_inputs", "tools_layer"]
