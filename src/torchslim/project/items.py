"""What a project's requirements are, and where each one came from.

A :class:`RequirementItem` is one line of the answer: a PEP 508 string to resolve
(``kind="requirements"``) or an entry of a lock the project gave us
(``kind="pinned"``: the version and hashes are honoured as they are).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

Kind = Literal["requirements", "pinned"]


@dataclass(frozen=True)
class Artifact:
    """One file of a pinned package, as the lock names it."""

    filename: str
    hash: str  # "sha256:<hex>"
    url: str | None = None


@dataclass(frozen=True)
class RequirementItem:
    text: str  # PEP 508 ("fastapi>=0.110") or, when pinned, "name==version"
    source: str  # "pyproject.toml [project].dependencies", "requirements.txt:3", "uv.lock"
    kind: Kind = "requirements"
    name: str = ""  # canonical name; filled from ``text`` when empty
    version: str | None = None  # the pinned version
    artifacts: tuple[Artifact, ...] = ()
    index: str | None = None  # the index a pinned package comes from, when the lock says
    url: str | None = None  # a direct URL / path / VCS source
    marker: str | None = None
    via: str | None = None  # the package that brought a pinned one in (None: direct)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", requirement_name(self.text))

    @property
    def hashes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.hash for a in self.artifacts))

    @property
    def pip_line(self) -> str:
        """The item as a requirements.txt line (pinned ones with every ``--hash``)."""
        text = self.text
        if self.marker and ";" not in text:
            text = f"{text} ; {self.marker}"
        return " ".join([text, *(f"--hash={h}" for h in self.hashes)])


# Names that mean a file, whatever else they parse as.
_FILE_SUFFIXES = (".txt", ".in", ".lock", ".toml", ".yml", ".yaml")
_FILE_NAMES = ("Pipfile",)


def requirement_entry(entry: str, root: Path) -> Literal["file", "inline"]:
    """Whether an entry of ``requirements`` names a file or is a PEP 508 requirement.

    A URL requirement (``pkg @ https://…``) is inline; a name ending in .txt, .in,
    .lock or .toml, ``Pipfile``, or any path with a ``/`` is a file. Anything else is
    inline, unless it also names a file in the project: then it is ambiguous.
    Raises ValueError with the fix.
    """

    def parses() -> str | None:
        try:
            Requirement(entry)
            return None
        except InvalidRequirement as exc:
            return str(exc).splitlines()[0]

    if "://" in entry or "@" in entry:
        error = parses()
        if error:
            raise ValueError(f"{entry!r} is not a valid requirement ({error})")
        return "inline"
    if entry.endswith(_FILE_SUFFIXES) or entry in _FILE_NAMES or "/" in entry:
        return "file"
    error = parses()
    if (root / entry).is_file():
        if error is None:
            raise ValueError(
                f"{entry!r} names a file in the project and is also a valid requirement; "
                f"write './{entry}' for the file or '{entry}>=0' for the package"
            )
        return "file"
    if error:
        raise ValueError(
            f"{entry!r} is neither a file in the project nor a valid requirement ({error}); "
            "write a requirements file name or a PEP 508 string like 'fastapi>=0.110'"
        )
    return "inline"


def requirement_name(text: str) -> str:
    """Canonical project name of a requirement string ("" for a bare URL or path)."""
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return ""


@dataclass(frozen=True)
class LineRewrite:
    """One requirement line of a project file as one build reads it (the file is not edited):
    ``text`` in place of the line at ``source`` ("requirements.txt:1"), or None to drop it."""

    source: str
    text: str | None


@dataclass(frozen=True)
class ProjectRequirements:
    """The prod set (installed) and the dev set (never installed; used by the audit)."""

    prod: tuple[RequirementItem, ...] = ()
    dev: tuple[RequirementItem, ...] = ()
    kind: Kind = "requirements"
    source: str = ""  # what the prod set was taken from, in words
    files: tuple[Path, ...] = ()  # prod files read (they key the lock)
    requirement_files: tuple[Path, ...] = ()  # prod pip requirement files (-r for pip/uv)
    notes: tuple[str, ...] = field(default_factory=tuple)  # choices made, for the user
    # Lines of the prod files that this build reads otherwise (--torch / --variant)
    rewrites: tuple[LineRewrite, ...] = ()

    def names(self, which: Literal["prod", "dev"] = "prod") -> list[str]:
        items = self.prod if which == "prod" else self.dev
        return list(dict.fromkeys(i.name for i in items if i.name))

    def rows(self) -> list[tuple[str, str]]:
        """(requirement, where it came from) per prod item, for ``torchslim deps``."""
        return [(i.text, i.source + (f" ← {i.via}" if i.via else "")) for i in self.prod]

    def requirements_text(self) -> str:
        """The prod set as one requirements.txt (hashes kept for pinned entries)."""
        return "".join(f"{item.pip_line}\n" for item in self.prod)


__all__ = [
    "Artifact",
    "Kind",
    "LineRewrite",
    "ProjectRequirements",
    "RequirementItem",
    "requirement_entry",
    "requirement_name",
]
