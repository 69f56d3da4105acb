"""What an image reference tells us without pulling it: tag, flavour, where Python lives.

Only well-known ML bases are recognised; anything else is "unknown" and rules
that need the fact stay silent rather than guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Ubuntu / Debian releases → their python3 (what `apt-get install python3` gives).
_DISTRO_PYTHON = {
    "ubuntu18.04": "3.6",
    "ubuntu20.04": "3.8",
    "ubuntu22.04": "3.10",
    "ubuntu24.04": "3.12",
    "18.04": "3.6",
    "20.04": "3.8",
    "22.04": "3.10",
    "24.04": "3.12",
    "bionic": "3.6",
    "focal": "3.8",
    "jammy": "3.10",
    "noble": "3.12",
    "buster": "3.7",
    "bullseye": "3.9",
    "bookworm": "3.11",
    "trixie": "3.13",
    "10": "3.7",
    "11": "3.9",
    "12": "3.11",
    "13": "3.13",
}


@dataclass(frozen=True)
class ImageRef:
    raw: str
    name: str  # repository without registry for docker.io images, e.g. "pytorch/pytorch"
    tag: str | None
    digest: str | None

    @property
    def unresolved(self) -> bool:
        return "$" in self.raw

    @property
    def is_scratch(self) -> bool:
        return self.name == "scratch"


def parse_ref(raw: str) -> ImageRef:
    rest, _, digest = raw.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = None
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
    name = rest.lower()
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return ImageRef(raw, name, tag, digest or None)


def is_devel(ref: ImageRef) -> bool:
    """CUDA/PyTorch images whose tag says they carry the compiler toolchain."""
    tag = (ref.tag or "").lower()
    return bool(re.search(r"(^|[-_.])devel($|[-_.])", tag)) or ref.name.endswith("-devel")


def is_cuda_base(ref: ImageRef) -> bool:
    """An NVIDIA CUDA image that ships the CUDA runtime libraries (not just ``-base``)."""
    if not ref.name.endswith("nvidia/cuda"):
        return False
    tag = (ref.tag or "").lower()
    return any(part in tag for part in ("runtime", "devel", "cudnn"))


@dataclass(frozen=True)
class PythonLocation:
    prefix: str  # "/usr/local", "/usr", "/opt/conda"
    version: str | None  # "3.11" when the reference says so


def python_of(ref: ImageRef) -> PythonLocation | None:
    """Where the base's own Python lives, judged from the reference alone."""
    tag = (ref.tag or "").lower()
    base = ref.name.rsplit("/", 1)[-1]
    if ref.name in ("python", "cgr.dev/chainguard/python"):
        m = re.match(r"^(3\.\d+)", tag)
        return PythonLocation("/usr/local", m.group(1) if m else None)
    if ref.name in ("pytorch/pytorch", "continuumio/miniconda3", "condaforge/miniforge3") or (
        base in ("miniconda3", "miniforge3", "mambaforge")
    ):
        return PythonLocation("/opt/conda", None)
    if ref.name.startswith("gcr.io/distroless/python3"):
        m = re.search(r"debian(\d+)", ref.name)
        return PythonLocation("/usr", _DISTRO_PYTHON.get(m.group(1)) if m else None)
    if ref.name.endswith("nvidia/cuda"):
        m = re.search(r"ubuntu(\d\d\.\d\d)", tag)
        return PythonLocation("/usr", _DISTRO_PYTHON.get(m.group(1)) if m else None)
    if ref.name in ("ubuntu", "debian"):
        key = re.sub(r"-slim$", "", tag)
        return PythonLocation("/usr", _DISTRO_PYTHON.get(key))
    return None


_SITE = re.compile(r"(/[\w./-]*?)/lib/python(3\.\d+)/(site|dist)-packages")


def site_packages(path: str) -> tuple[str, str] | None:
    """``/usr/local/lib/python3.10/site-packages/x`` → ``("/usr/local", "3.10")``."""
    m = _SITE.search(path)
    return (m.group(1), m.group(2)) if m else None
