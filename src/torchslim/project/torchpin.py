"""The torch pin a project already has, and whether it agrees with the config.

``torch==2.14.1+cu130`` says version 2.14.1 and variant cu130; an index URL such as
``https://download.pytorch.org/whl/cu128`` says the variant too. A pin that excludes the
configured torch is one ConfigError naming both pins and where each is written.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from torchslim.errors import ConfigError
from torchslim.project import reqfiles
from torchslim.project.items import ProjectRequirements, RequirementItem
from torchslim.torchmeta import shipped_variants

_INDEX_VARIANT = re.compile(r"download\.pytorch\.org/whl/(?:[a-z]+/)?(cpu|cu\d{3})\b")
_LOCAL_VARIANT = re.compile(r"^(cpu|cu\d{3})$")
# The image's platform: markers that exclude Linux pins are not about this image.
_LINUX = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "extra": ""}


@dataclass(frozen=True)
class TorchPin:
    text: str  # as written: "torch==2.14.1+cu130"
    source: str  # "requirements.txt:2"
    specifier: SpecifierSet
    version: str | None  # an exact pin's public version ("2.14.1"); None for ranges
    variant: str | None  # from the local version tag ("cu130"), if any


def variant_of_local(version: str) -> str | None:
    """``2.14.1+cu130`` → ``cu130``; ``2.13.0`` → None."""
    try:
        local = Version(version).local
    except InvalidVersion:
        return None
    return local if local and _LOCAL_VARIANT.match(local) else None


def variant_of_index(url: str) -> str | None:
    """``https://download.pytorch.org/whl/cu128`` → ``cu128``."""
    m = _INDEX_VARIANT.search(url)
    return m.group(1) if m else None


def applies_to_linux(marker: str | None) -> bool:
    """Whether a requirement with ``marker`` is one of a Linux image's."""
    if not marker:
        return True
    try:
        return Marker(marker).evaluate(dict(_LINUX))
    except Exception:  # a marker we cannot evaluate might apply: keep the pin
        return True


def torch_pins(items: Iterable[RequirementItem]) -> list[TorchPin]:
    """Every pin of ``torch`` among ``items`` that applies on Linux."""
    out = []
    for item in items:
        if item.name != "torch":
            continue
        if item.kind == "pinned" and item.version:
            if applies_to_linux(item.marker):
                spec = SpecifierSet(f"=={item.version}")
                out.append(
                    TorchPin(
                        item.text,
                        item.source,
                        spec,
                        _public(item.version),
                        variant_of_local(item.version),
                    )  # fmt: skip
                )
            continue
        try:
            req = Requirement(item.text)
        except InvalidRequirement:
            continue
        marker = str(req.marker) if req.marker else item.marker
        if not applies_to_linux(marker):
            continue
        exact = [s.version for s in req.specifier if s.operator in ("==", "===")]
        version = exact[0] if exact and "*" not in exact[0] else None
        if exact and re.fullmatch(r"\d+\.\d+\.\d+\.\*", exact[0]):
            version = exact[0][:-2]  # "==2.5.1.*" (conda's pytorch=2.5.1): that release
        out.append(
            TorchPin(
                item.text,
                item.source,
                req.specifier,
                _public(version) if version else None,
                variant_of_local(version) if version else None,
            )
        )
    return out


def _public(version: str) -> str:
    try:
        return Version(version).public
    except InvalidVersion:
        return version


def check_torch_pin(
    requirements: ProjectRequirements,
    torch_version: str,
    variant: str,
    *,
    config_file: str = "torchslim.toml",
    check_version: bool = True,
    check_variant: bool = True,
) -> None:
    """Raise ConfigError when a torch pin of the project excludes the configured torch
    (``check_version``) or names another variant (``check_variant``); a value the command
    line overrides is not checked: the pins follow it for that build."""
    for pin in torch_pins(requirements.prod):
        # A pin with a local tag ("==2.13.0+cpu") matches only versions with that tag.
        candidate = f"{torch_version}+{pin.variant}" if pin.variant else torch_version
        if check_version and not pin.specifier.contains(candidate, prereleases=True):
            raise ConfigError(
                f'{pin.text} in {pin.source} conflicts with torch = "{torch_version}" '
                f"({config_file}: torch): make them agree (change one of the two pins), "
                "or pass --torch to build another torch once"
            )
        if check_variant and pin.variant is not None and pin.variant != variant:
            raise ConfigError(
                f'{pin.text} in {pin.source} is the {pin.variant} build, but variant = "{variant}" '
                f'({config_file}: variant): make them agree (set variant = "{pin.variant}" '
                "or drop the local version from the pin), or pass --variant for one build"
            )


def nearest_cuda_variant(torch: str, cuda: str) -> str | None:
    """The torch variant closest to CUDA ``cuda`` of the same major, not newer."""
    major, minor = (int(x) for x in cuda.split("."))
    options = [v for v in shipped_variants(torch) if v.startswith(f"cu{major}")]
    fits = [v for v in options if int(v[len(str(major)) + 2 :] or 0) <= minor]
    chosen = fits or options
    return chosen[-1] if chosen else None


def newest_known_torch() -> str:
    """The newest torch release torchmeta knows, as ``X.Y.0``."""
    known = [m for m in range(0, 100) if shipped_variants(f"2.{m}")]
    return f"2.{max(known)}.0"


def choose_torch(pins: list[TorchPin]) -> tuple[str, str | None] | None:
    """(version, variant) from the first exact pin, else from the newest release a range
    allows among those torchmeta knows; None when nothing pins torch."""
    for pin in pins:
        if pin.version is not None:
            return pin.version, pin.variant
    for pin in pins:
        known = [f"2.{m}.0" for m in range(0, 100) if shipped_variants(f"2.{m}")]
        allowed = [v for v in known if pin.specifier.contains(v)]
        if allowed:
            return max(allowed, key=Version), None
    return None


def torch_choice(pins: list[TorchPin]) -> tuple[str, str | None, str] | None:
    """``choose_torch`` and where the pin is written: (version, variant, "… in file:line")."""
    chosen = choose_torch(pins)
    return None if chosen is None else (*chosen, f"{pins[0].text} in {pins[0].source}")


def pins_in_requirement_files(root: Path) -> list[TorchPin]:
    """Torch pins of the project's prod requirement files, read or not (a requirements.txt of
    ``-e .`` and a torch pin, beside a pyproject.toml that leaves torch open)."""
    found = reqfiles.discover(root)
    pins: list[TorchPin] = []
    for path in [p for p in (found.prod, *found.unused) if p is not None]:
        with contextlib.suppress(ConfigError):
            pins += torch_pins(reqfiles.file_items(root, path)[0])
    return pins


__all__ = [
    "TorchPin",
    "applies_to_linux",
    "check_torch_pin",
    "choose_torch",
    "nearest_cuda_variant",
    "pins_in_requirement_files",
    "newest_known_torch",
    "torch_choice",
    "torch_pins",
    "variant_of_index",
    "variant_of_local",
]
