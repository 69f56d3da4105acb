"""What the image says about itself: its license and description, as the project states them.

The config's ``license`` / ``description`` win; else ``pyproject.toml``'s ``[project]``
says: ``license = "MIT"`` (PEP 639) or ``license = {text = "MIT"}`` (PEP 621), and
``description``. A ``license = {file = …}`` names no expression, so it gives none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torchslim.config import ProjectConfig
from torchslim.project.pyproject import read_pyproject


@dataclass(frozen=True)
class ImageMetadata:
    licenses: str | None = None  # org.opencontainers.image.licenses
    description: str | None = None  # org.opencontainers.image.description


def _license(project: dict[str, Any]) -> str | None:
    value = project.get("license")
    if isinstance(value, dict):
        value = value.get("text")
    return (value.strip() or None) if isinstance(value, str) else None


def _description(project: dict[str, Any]) -> str | None:
    value = project.get("description")
    return (" ".join(value.split()) or None) if isinstance(value, str) else None


def image_metadata(cfg: ProjectConfig) -> ImageMetadata:
    """The config's ``license`` / ``description``, else ``[project]``'s."""
    project: dict[str, Any] = {}
    if cfg.license is None or cfg.description is None:
        data = read_pyproject(cfg.root) or {}
        found = data.get("project")
        project = found if isinstance(found, dict) else {}
    return ImageMetadata(
        licenses=cfg.license or _license(project),
        description=cfg.description or _description(project),
    )
