"""The project's torch pins, as one build with ``--torch`` / ``--variant`` reads them.

The command line wins over the project for that build, wherever the project pins torch:
requirement files, pyproject dependencies and groups, environment.yml, locks. Each torch pin
becomes the build's torch; torchvision and torchaudio move to the release that pairs with
it (from :mod:`torchslim.torchmeta`), or the build is refused in one line; pins that were
torch's own choice (its CUDA wheels, triton, what a lock says torch brought) are left to
the new torch. Nothing is written here: the result is a new :class:`ProjectRequirements`
whose ``rewrites`` say which lines of which files the lock step reads otherwise.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from torchslim.errors import ConfigError
from torchslim.project.items import LineRewrite, ProjectRequirements, RequirementItem
from torchslim.project.torchpin import applies_to_linux
from torchslim.torchmeta import FAMILY, TorchBuild, family_release, family_series

# Packages a torch wheel requires for its own CUDA build: which ones is torch's choice.
TORCH_RUNTIME = re.compile(
    r"^(nvidia-.+|triton|pytorch-triton(-.+)?|cuda-toolkit|cuda-bindings|cuda-pathfinder)$"
)


def override_torch(
    reqs: ProjectRequirements, torch: TorchBuild, origin: str
) -> ProjectRequirements:
    """``reqs`` with every Linux torch pin replaced by ``torch`` for one build.

    ``origin`` says where ``torch`` came from ("--torch 2.13.0 (command line)"); every note
    and error names it beside the pin's own ``file:line``.
    """
    by_name = {i.name: i for i in reqs.prod}
    prod: list[RequirementItem] = []
    rewrites: list[LineRewrite] = []
    notes: list[str] = []
    for item in reqs.prod:
        new = _replaced(item, torch, origin, by_name)
        if new is item:
            prod.append(item)
            continue
        rewrites.append(LineRewrite(item.source, None if new is None else new.text))
        if new is None:
            notes.append(f"{item.text} in {item.source}: left to {torch.requirement} ({origin})")
        else:
            prod.append(new)
            notes.append(f"{item.text} in {item.source}: {new.text} for this build ({origin})")
    return dataclasses.replace(
        reqs,
        prod=tuple(prod),
        rewrites=(*reqs.rewrites, *rewrites),
        notes=(*reqs.notes, *notes),
    )


def _replaced(
    item: RequirementItem,
    torch: TorchBuild,
    origin: str,
    by_name: Mapping[str, RequirementItem],
) -> RequirementItem | None:
    """The item as this build reads it: itself, another one, or None (dropped)."""
    if not applies_to_linux(_marker(item)):
        return item
    if item.name == "torch":
        return _with_spec(item, torch.requirement.removeprefix("torch"))
    if item.name in FAMILY:
        return _companion(item, torch, origin)
    if _torch_chose(item, by_name):
        return None
    return item


def _requirement(item: RequirementItem) -> Requirement | None:
    try:
        return Requirement(item.text)
    except InvalidRequirement:
        return None


def _marker(item: RequirementItem) -> str | None:
    req = _requirement(item)
    return str(req.marker) if req is not None and req.marker else item.marker


def _with_spec(item: RequirementItem, spec: str) -> RequirementItem:
    """``item`` pinned by ``spec`` ("==2.13.0+cpu"), its extras and marker kept."""
    req = _requirement(item)
    extras = f"[{','.join(sorted(req.extras))}]" if req is not None and req.extras else ""
    marker = _marker(item)
    text = f"{item.name}{extras}{spec}" + (f" ; {marker}" if marker else "")
    return RequirementItem(text, item.source, name=item.name)


def _companion(item: RequirementItem, torch: TorchBuild, origin: str) -> RequirementItem:
    """torchvision/torchaudio moved to the release that pairs with ``torch``."""
    want = family_release(item.name, torch.version)
    series = family_series(item.name, torch.version)
    req = _requirement(item)
    if want is None or req is None or req.url or item.url:
        matching = f"{item.name}=={want}" if want else f"the {item.name} {series} release"
        raise ConfigError(
            f"{item.text} in {item.source} cannot follow torch {torch.version} ({origin}): "
            f"the matching release is {matching}; pin that in {item.source} or build "
            "without the override"
        )
    current = item.version or next(
        (s.version for s in req.specifier if s.operator in ("==", "===")), None
    )
    if current is None and req.specifier.contains(want, prereleases=True):
        return item  # a range that allows the pair: uv picks it beside the new torch
    if current is not None and _public(current) == want:
        return item
    local = f"+{torch.variant}" if current and "+" in current and "+" in torch.requirement else ""
    return _with_spec(item, f"=={want}{local}")


def _public(version: str) -> str:
    try:
        return Version(version).public
    except InvalidVersion:
        return version


def _torch_chose(item: RequirementItem, by_name: Mapping[str, RequirementItem]) -> bool:
    """Whether an exact pin was torch's choice, not the project's: torch's CUDA wheels and
    triton, and what a lock says torch or its family brought."""
    req = _requirement(item)
    exact = item.kind == "pinned" or (
        req is not None and any(s.operator in ("==", "===") for s in req.specifier)
    )
    if exact and TORCH_RUNTIME.match(item.name):
        return True
    seen: set[str] = set()
    via = canonicalize_name(item.via) if item.kind == "pinned" and item.via else None
    while via is not None and via not in seen:
        if via == "torch" or via in FAMILY:
            return True
        seen.add(via)
        parent = by_name.get(via)
        via = canonicalize_name(parent.via) if parent is not None and parent.via else None
    return False


__all__ = ["TORCH_RUNTIME", "override_torch"]
