"""Getting an image into a local engine (podman, docker) and reading its config.

``docker-archive:FILE`` is loaded, ``oci:DIR[:REF]`` copied in (skopeo for podman,
else re-packed as an archive), an engine's own name used as it is. Failures carry a
kind (input, engine, image, …) that ``verify`` turns into its exit code.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

from torchslim.errors import ConfigError
from torchslim.oci.layout import layout_ref_name
from torchslim.oci.transport import Location, parse_location
from torchslim.runtime.cuda import cuda_of_image
from torchslim.runtime.engine import Engine

CauseKind = Literal["input", "engine", "image", "driver", "toolkit"]
LOAD_TIMEOUT = 1800.0
TEMP_REPO = "localhost/torchslim-verify"  # images verify names itself, and removes after


class Failed(Exception):
    def __init__(self, kind: CauseKind, cause: str) -> None:
        super().__init__(cause)
        self.kind: CauseKind = kind
        self.cause = cause


def tail(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


class EngineCli:
    """Runs ``<engine> ...``; an engine that cannot start is a failure of kind ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [self.engine.path, *args]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError as exc:
            raise Failed(
                "engine",
                f"{self.engine.name} not found at {self.engine.path}; install it or pick "
                "another with --engine",
            ) from exc
        except OSError as exc:
            raise Failed(
                "engine", f"{self.engine.name} at {self.engine.path} cannot run: {exc}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise Failed(
                "engine",
                f"`{self.engine.name} {' '.join(args[:2])}` did not finish in {timeout:.0f}s",
            ) from exc


# ------------------------------------------------------------------ load


_LOADED = re.compile(r"^Loaded image(?:\(s\))?:\s*(\S+)", re.M)
_LOADED_ID = re.compile(r"^Loaded image ID:\s*(\S+)", re.M)


def _load_archive(cli: EngineCli, path: Path) -> str:
    proc = cli("load", "-i", str(path), timeout=LOAD_TIMEOUT)
    if proc.returncode != 0:
        raise Failed(
            "image",
            f"{cli.engine.name} load -i {path} failed: {tail(proc.stderr or proc.stdout, 2)}",
        )
    out = proc.stdout + "\n" + proc.stderr
    m = _LOADED.search(out) or _LOADED_ID.search(out)
    if not m:
        raise Failed("image", f"{cli.engine.name} load -i {path} named no image: {tail(out, 2)}")
    return m.group(1).split(",")[0]


def _load_oci(cli: EngineCli, loc: Location) -> str:
    path, ref, spec = loc.path, loc.ref, loc.target
    if not (path / "index.json").is_file():
        raise Failed("input", f"oci:{path}: no OCI image layout there (no index.json)")
    # By name: skopeo refuses a layout that also lists referrers (SBOMs) when none is given.
    ref = ref or layout_ref_name(path)
    name = f"{TEMP_REPO}:{secrets.token_hex(6)}"
    skopeo = shutil.which("skopeo")
    if cli.engine.name == "podman" and skopeo:
        # podman load does not read layout directories; skopeo copies straight into its storage.
        src = f"oci:{path}" + (f":{ref}" if ref else "")
        try:
            proc = subprocess.run(
                [skopeo, "copy", "--quiet", src, f"containers-storage:{name}"],
                capture_output=True,
                text=True,
                timeout=LOAD_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Failed("engine", f"skopeo copy {src} failed: {exc}") from exc
        if proc.returncode != 0:
            raise Failed("image", f"skopeo copy {src} failed: {tail(proc.stderr, 2)}")
        return name
    # docker (or podman without skopeo): re-pack as a docker-archive with torchslim's writers.
    from torchslim.errors import TorchslimError
    from torchslim.oci.archive import write_docker_archive
    from torchslim.oci.layout import read_oci_layout

    with tempfile.TemporaryDirectory(prefix="torchslim-verify-") as tmp:
        archive = Path(tmp) / "image.tar"
        try:
            write_docker_archive(read_oci_layout(path, ref), archive, repo_tags=[name])
        except TorchslimError as exc:
            raise Failed("image", f"oci:{spec}: {exc}") from exc
        _load_archive(cli, archive)
    return name


def _location(image: str) -> Location | None:
    """An ``oci:`` / ``docker-archive:`` location or an existing file; None for an engine name."""
    if image.startswith(("oci:", "docker-archive:")):
        return parse_location(image, allowed=("oci", "docker-archive"))
    if Path(image).is_file():
        return Location("docker-archive", image)
    return None


def resolve_image(cli: EngineCli, image: str, load_from: Path | None) -> str:
    """Get the image into the engine; return the reference to run."""
    if load_from is not None:
        src = Path(load_from)
        if src.is_dir():
            loaded = _load_oci(cli, Location("oci", str(src)))
        elif src.is_file():
            loaded = _load_archive(cli, src)
        else:
            raise Failed("input", f"image file {src} does not exist; build it or fix the path")
        return image or loaded
    try:
        loc = _location(image)
    except ConfigError as exc:
        raise Failed("input", str(exc)) from exc
    if loc is not None and loc.transport == "docker-archive":
        if not loc.path.is_file():
            raise Failed("input", f"image file {loc.path} does not exist; build it or fix the path")
        return _load_archive(cli, loc.path)
    if loc is not None:
        if not loc.path.is_dir():
            raise Failed("input", f"OCI layout {loc.path} does not exist")
        return _load_oci(cli, loc)
    if image.endswith((".tar", ".tar.gz")):
        raise Failed("input", f"image file {image} does not exist; build it or fix the path")
    if cli("image", "inspect", image).returncode != 0:
        raise Failed(
            "input",
            f"image {image!r} is not in {cli.engine.name}'s storage; pass docker-archive:FILE "
            f"or oci:DIR, or pull it first",
        )
    return image


def inspect_image(cli: EngineCli, ref: str) -> tuple[dict[str, str], list[str]]:
    proc = cli("image", "inspect", ref)
    try:
        data = json.loads(proc.stdout)[0]
    except (ValueError, IndexError, KeyError, TypeError):
        return {}, []
    config = data.get("Config") or {}
    return dict(config.get("Labels") or {}), list(config.get("Env") or [])


def image_cuda(image: str, engine: Engine | None = None) -> str | None:
    """The CUDA version ``image`` was built for (for ``doctor --image``); None for CPU/unknown.

    Archives and layouts are read directly; a name is asked of ``engine``.
    """
    from torchslim.errors import TorchslimError
    from torchslim.oci.transport import open_image

    try:
        loc = _location(image)
        if loc is not None:
            cfg = open_image(loc).config()
        elif engine is not None:
            labels, env = inspect_image(EngineCli(engine), image)
            return cuda_of_image(labels, env)
        else:
            return None
    except (TorchslimError, OSError, Failed):
        return None
    c = cfg.get("config") or {}
    return cuda_of_image(dict(c.get("Labels") or {}), list(c.get("Env") or []))
