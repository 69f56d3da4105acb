"""The one parser of image locations, named as skopeo names them, and the one opener.

``oci:DIR[:REF]``, ``docker-archive:FILE[:REF]``, ``docker://REGISTRY/REPO[:TAG|@DIGEST]``,
``docker-daemon:NAME`` and ``containers-storage:NAME``. Where a bare word is allowed it
means a registry reference (a ``base``: ``python:3.11-slim``) or a path (an argument
to ``analyze``: a directory is a layout, a file an archive). A path may itself hold
``:``: when the whole text names an existing path, it wins over a ``:REF`` split.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torchslim.config import Platform
from torchslim.confined import exists
from torchslim.errors import BuildError, ConfigError
from torchslim.oci.archive import archive_repo_tag, read_docker_archive
from torchslim.oci.image import Image
from torchslim.oci.layout import layout_ref_name, read_oci_layout
from torchslim.oci.pull import read_registry_image
from torchslim.oci.reference import parse_reference
from torchslim.redact import quote

Transport = Literal["oci", "docker-archive", "docker", "docker-daemon", "containers-storage"]
Bare = Literal["registry", "path"]

FILE_TRANSPORTS: tuple[Transport, ...] = ("oci", "docker-archive")
ENGINE_OF: dict[Transport, str] = {"docker-daemon": "docker", "containers-storage": "podman"}
SAVE_TIMEOUT_S = 3600
EXAMPLES = "oci:DIR[:REF], docker-archive:FILE[:REF] or docker://REGISTRY/REPO[:TAG]"


@dataclass(frozen=True)
class Location:
    """Where an image is: a transport and what it names there."""

    transport: Transport
    target: str  # a path (oci, docker-archive), a reference (docker) or an engine's name
    ref: str | None = None  # the image inside a layout or archive (``oci:DIR:REF``)

    @property
    def path(self) -> Path:
        return Path(self.target)

    @property
    def is_file(self) -> bool:
        """Whether it is a path on this machine (a layout or an archive)."""
        return self.transport in FILE_TRANSPORTS

    def __str__(self) -> str:
        if self.transport == "docker":
            return f"docker://{self.target}"
        tail = f":{self.ref}" if self.ref else ""
        return f"{self.transport}:{self.target}{tail}"


def _split_path(rest: str) -> tuple[str, str | None]:
    """``PATH[:REF]``: the path wins when it exists as written (paths may hold ':')."""
    if ":" not in rest or exists(Path(rest), "image path"):
        return rest, None
    path, _, ref = rest.rpartition(":")
    if not path:
        return rest, None
    return path, ref or None


def parse_location(
    text: str,
    *,
    what: str = "image",
    allowed: tuple[Transport, ...] | None = None,
    bare: Bare | None = None,
) -> Location:
    """``text`` as a Location; a one-line ConfigError naming ``what`` and the forms accepted."""
    text = text.strip()
    loc: Location | None = None
    if text.startswith("docker://"):
        ref = text.removeprefix("docker://")
        parse_reference(ref)  # one-line ConfigError on garbage
        loc = Location("docker", ref)
    else:
        transport, sep, rest = text.partition(":")
        if sep and rest and transport in ("oci", "docker-archive"):
            path, inner = _split_path(rest)
            loc = Location("oci" if transport == "oci" else "docker-archive", path, inner)
        elif sep and rest and transport == "docker-daemon":
            loc = Location("docker-daemon", rest)
        elif sep and rest and transport in ("containers-storage", "podman"):
            loc = Location("containers-storage", rest)
        elif bare == "registry" and text:
            parse_reference(text)
            loc = Location("docker", text)
        elif bare == "path" and text and exists(Path(text), what):
            loc = Location("oci" if Path(text).is_dir() else "docker-archive", text)
    kinds = allowed or ("oci", "docker-archive", "docker", "docker-daemon", "containers-storage")
    if loc is None or loc.transport not in kinds:
        forms = ", ".join(_FORMS[k] for k in kinds)
        raise ConfigError(
            f"{what} {quote(text)} is not an image reference torchslim reads; use {forms}"
        )
    return loc


_FORMS: dict[Transport, str] = {
    "oci": "oci:DIR[:REF]",
    "docker-archive": "docker-archive:FILE[:REF]",
    "docker": "docker://REGISTRY/REPO[:TAG]",
    "docker-daemon": "docker-daemon:NAME",
    "containers-storage": "containers-storage:NAME",
}


def open_image(
    location: Location | str,
    *,
    platform: Platform | None = None,
    tls_verify: bool = True,
) -> Image:
    """Open the image a location names; layer bytes are read later, on demand.

    ``platform`` picks one image of a multi-platform index (default linux/amd64).
    """
    loc = location if isinstance(location, Location) else parse_location(location, bare="path")
    want = platform or Platform("linux", "amd64")
    if loc.transport == "oci":
        if not exists(loc.path, str(loc)):
            raise BuildError(f"{loc}: {loc.path} does not exist; build it or fix the path")
        return read_oci_layout(loc.path, loc.ref, platform=want)
    if loc.transport == "docker-archive":
        if not exists(loc.path, str(loc)) or not loc.path.is_file():
            raise BuildError(f"{loc}: {loc.path} does not exist; build it or fix the path")
        return read_docker_archive(loc.path, loc.ref)
    if loc.transport == "docker":
        return read_registry_image(loc.target, platform=want, tls_verify=tls_verify)
    return _save(ENGINE_OF[loc.transport], loc.target)


def _save(engine: str, name: str) -> Image:
    """An image from a local engine's store, through ``ENGINE save`` into a temporary file."""
    exe = shutil.which(engine)
    if exe is None:
        raise BuildError(
            f"{engine} is not installed, so {name!r} cannot be read from its image store; "
            f"install {engine} or `{engine} save` the image and use docker-archive:FILE"
        )
    tmp = Path(tempfile.mkdtemp(prefix="torchslim-save-"))
    out = tmp / "image.tar"
    cmd = [exe, "save", "-o", str(out), name]
    if engine == "podman":
        cmd[2:2] = ["--format", "docker-archive"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SAVE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BuildError(
            f"`{engine} save {name}` failed ({exc}); is the {engine} service up?"
        ) from exc
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(
            f"`{engine} save {name}` failed: {last}; check the image name with `{engine} images`"
        )
    try:
        image = read_docker_archive(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    weakref.finalize(image, shutil.rmtree, tmp, True)  # the copy lives as long as the image
    return image


def reference_name(location: Location | str) -> str:
    """The name an image is known by (for tag checks): a RepoTag, a layout's ref name, NAME."""
    loc = location if isinstance(location, Location) else parse_location(location, bare="path")
    if loc.transport == "docker" or loc.transport in ENGINE_OF:
        return loc.target
    if loc.transport == "oci":
        if loc.ref:
            return f"{loc.path.name}:{loc.ref}"
        name = layout_ref_name(loc.path)
        if name is None:
            return loc.path.name
        return name if ":" in name or "/" in name else f"{loc.path.name}:{name}"
    return loc.ref or archive_repo_tag(loc.path) or loc.path.name
