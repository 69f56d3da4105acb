"""Image references → Image objects: ``oci:DIR[:tag]``, ``docker-archive:FILE[:ref]``,
``docker-daemon:NAME``, ``containers-storage:NAME``, ``docker://REF``, or a bare path."""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import subprocess
import tarfile
import tempfile
import weakref
from pathlib import Path

from torchslim.errors import BuildError, TorchslimError
from torchslim.oci.archive import read_docker_archive
from torchslim.oci.image import Image
from torchslim.oci.layout import read_oci_layout

SAVE_TIMEOUT_S = 3600


def _split(rest: str) -> tuple[str, str | None]:
    """``PATH[:ref]``: the path wins when it exists as written (paths may hold ':')."""
    if Path(rest).exists() or ":" not in rest:
        return rest, None
    path, _, ref = rest.rpartition(":")
    return path, ref or None


def _save(engine: str, name: str) -> Image:
    exe = shutil.which(engine)
    if exe is None:
        raise BuildError(
            f"{engine} is not installed, so {name!r} cannot be read from its image store; "
            f"install {engine} or `{engine} save` the image and analyze docker-archive:FILE"
        )
    tmp = Path(tempfile.mkdtemp(prefix="torchslim-analyze-"))
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
    weakref.finalize(image, shutil.rmtree, tmp, True)  # the temp copy lives as long as the image
    return image


def _registry(ref: str) -> Image:
    """Layers are fetched into torchslim's verified blob cache, then streamed from there."""
    if importlib.util.find_spec("torchslim.oci.registry") is None:
        raise TorchslimError(
            f"docker://{ref}: reading from a registry is not supported in this build; "
            f"`docker save -o image.tar {ref}` and analyze docker-archive:image.tar"
        )
    registry = importlib.import_module("torchslim.oci.registry")
    image: Image = registry.read_registry_image(ref)
    return image


def open_image(ref: str) -> Image:
    """Open the image ``ref`` names; layer bytes are read later, on demand."""
    transport, sep, rest = ref.partition(":")
    if sep and transport == "oci":
        path, tag = _split(rest)
        return read_oci_layout(Path(path), tag)
    if sep and transport == "docker-archive":
        path, tag = _split(rest)
        return read_docker_archive(Path(path), tag)
    if sep and transport == "docker-daemon":
        return _save("docker", rest)
    if sep and transport in ("containers-storage", "podman"):
        return _save("podman", rest)
    if ref.startswith("docker://"):
        return _registry(ref[len("docker://") :])
    p = Path(ref)
    if p.is_dir():
        return read_oci_layout(p)
    if p.is_file():
        return read_docker_archive(p)
    raise BuildError(
        f"{ref!r} is not an image reference torchslim reads; use oci:DIR[:tag], "
        "docker-archive:FILE, docker-daemon:NAME, containers-storage:NAME or docker://REF"
    )


def reference_name(ref: str) -> str:
    """The name the image is known by (for the tag check): a RepoTag, an OCI ref name, NAME."""
    transport, sep, rest = ref.partition(":")
    if sep and transport in ("docker-daemon", "containers-storage", "podman"):
        return rest
    if ref.startswith("docker://"):
        return ref[len("docker://") :]
    if sep and transport == "oci":
        path, tag = _split(rest)
        return f"{Path(path).name}:{tag}" if tag else _oci_ref(Path(path))
    path, tag = _split(rest if sep and transport == "docker-archive" else ref)
    return tag or _archive_tag(Path(path)) or Path(path).name


def _oci_ref(root: Path) -> str:
    try:
        index = json.loads((root / "index.json").read_text())
        ann = (index.get("manifests") or [{}])[0].get("annotations") or {}
        name = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name")
        if name:
            return str(name) if ":" in str(name) or "/" in str(name) else f"{root.name}:{name}"
    except (OSError, ValueError, AttributeError, IndexError):
        pass
    return root.name


def _archive_tag(path: Path) -> str | None:
    try:
        with tarfile.open(path, "r:") as tar:
            member = tar.getmember("manifest.json")
            f = tar.extractfile(member)
            entries = json.loads(f.read()) if f is not None else []
        tags = entries[0].get("RepoTags") or []
        return str(tags[0]) if tags else None
    except (OSError, ValueError, KeyError, tarfile.TarError, AttributeError, IndexError):
        return None
