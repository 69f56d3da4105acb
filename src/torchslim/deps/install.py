"""Install a wheel into a staging tree that maps to the image's ``/``, with ``installer``.

No bytecode is compiled here: the slim step deletes wheel ``__pycache__`` and
precompiles deterministically afterwards. Files are written in wheel order; the
layer writer fixes timestamps and owners, so nothing host-specific survives.
"""

from __future__ import annotations

import os
import posixpath
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.records import Hash, RecordEntry
from installer.sources import WheelFile
from installer.utils import Scheme as InstallerScheme
from installer.utils import copyfileobj_with_hashing
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from torchslim.errors import BuildError, IntegrityError

INSTALLER_NAME = b"torchslim"


@dataclass(frozen=True)
class Scheme:
    """Absolute paths inside the image; ``headers`` may contain ``<name>`` or ``{name}``."""

    purelib: str
    platlib: str
    scripts: str
    data: str
    headers: str

    @classmethod
    def debian(cls, python: str = "3.11", prefix: str = "/usr/local") -> Scheme:
        """The layout of Debian's python3 for ``pip install`` outside a venv."""
        site = f"{prefix}/lib/python{python}/dist-packages"
        return cls(site, site, f"{prefix}/bin", prefix, f"{prefix}/include/python{python}/<name>")

    def for_dist(self, name: str) -> dict[str, str]:
        out = asdict(self)
        out["headers"] = self.headers.replace("<name>", name).replace("{name}", name)
        for key, value in out.items():
            if not value.startswith("/"):
                raise BuildError(f"install scheme {key}={value!r} must be an absolute image path")
        return out


SkipFn = Callable[[str], str | None]


class _RecordingDestination(SchemeDictionaryDestination):
    """Remembers every image path written, and refuses paths that escape their scheme."""

    def __init__(
        self,
        scheme_dict: dict[str, str],
        interpreter: str,
        root: Path,
        skip: SkipFn | None = None,
        skipped: dict[str, tuple[str, int]] | None = None,
    ) -> None:
        super().__init__(
            scheme_dict,
            interpreter,
            "posix",
            bytecode_optimization_levels=(),
            destdir=str(root),
        )
        self.written: list[str] = []
        self.skip = skip
        self.skipped = skipped if skipped is not None else {}

    def write_to_fs(
        self, scheme: InstallerScheme, path: str, stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        base = self.scheme_dict[scheme].rstrip("/")
        image_path = posixpath.normpath(posixpath.join(base, path))
        if not (image_path + "/").startswith(base + "/") or posixpath.isabs(path):
            raise IntegrityError(f"wheel file {path!r} would be written outside {base}; refused")
        reason = self.skip(image_path) if self.skip is not None else None
        if reason is not None:
            # Not written; RECORD still lists it, as the wheel did, until slimming books it.
            with open(os.devnull, "wb") as discard:  # hashed and counted, not kept
                digest, size = copyfileobj_with_hashing(stream, discard, self.hash_algorithm)
            self.skipped[image_path] = (reason, size)
            return RecordEntry(path, Hash(self.hash_algorithm, digest), size)
        self.written.append(image_path)
        return super().write_to_fs(scheme, path, stream, is_executable)


def install_wheel(
    wheel: Path,
    root: Path,
    scheme: Scheme,
    interpreter: str,
    *,
    skip: SkipFn | None = None,
    skipped: dict[str, tuple[str, int]] | None = None,
) -> list[str]:
    """Install ``wheel`` under ``root`` (= image ``/``); returns the image paths written.

    Scripts get ``#!<interpreter>``; RECORD is written; INSTALLER says ``torchslim``.
    The wheel file may have any name (cache blobs are named by digest), so its real
    filename is taken from its ``.dist-info`` directory. ``skip(image_path)``: a reason
    not to write that file (slimming would remove it); ``skipped`` gets image path ->
    (reason, bytes) for each, and RECORD still lists it.
    """
    try:
        with zipfile.ZipFile(wheel) as zf:
            filename = _wheel_name(zf, wheel)
    except zipfile.BadZipFile:
        raise IntegrityError(f"{wheel} is not a wheel (not a zip file); delete it") from None
    name = parse_wheel_filename(filename)[0]
    dest = _RecordingDestination(scheme.for_dist(str(name)), interpreter, root, skip, skipped)
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.filename = filename  # WheelFile parses this; cache blobs are named by digest
            source = WheelFile(zf)
            install(source, dest, {"INSTALLER": INSTALLER_NAME})
    except FileExistsError as exc:
        raise BuildError(f"installing {filename}: {exc}; two packages ship the same file") from None
    except (InstallerError, ValueError) as exc:
        raise BuildError(f"installing {filename} failed: {str(exc).splitlines()[0]}") from None
    except (EOFError, zipfile.BadZipFile, zlib.error) as exc:  # cut short or damaged on disk
        raise IntegrityError(
            f"{wheel} ({filename}) is damaged ({exc or type(exc).__name__}); delete it and "
            "build again to fetch it anew"
        ) from None
    return dest.written


def _wheel_name(zf: zipfile.ZipFile, wheel: Path) -> str:
    """``name-version-tags.whl`` from the file name, else rebuilt from the WHEEL metadata."""
    try:
        parse_wheel_filename(wheel.name)
        return wheel.name
    except InvalidWheelFilename:
        pass
    infos = {n.split("/")[0] for n in zf.namelist() if n.split("/")[0].endswith(".dist-info")}
    if len(infos) != 1:
        raise IntegrityError(f"{wheel}: expected one .dist-info directory, found {len(infos)}")
    info = infos.pop()
    dist_version = info.removesuffix(".dist-info")
    wheel_meta = zf.read(f"{info}/WHEEL").decode("utf-8")
    tag = next(
        (ln.split(":", 1)[1].strip() for ln in wheel_meta.splitlines() if ln.startswith("Tag:")),
        "py3-none-any",
    )
    return f"{dist_version}-{tag}.whl"


__all__ = ["INSTALLER_NAME", "Scheme", "install_wheel"]
