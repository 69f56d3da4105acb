"""deb822 stanzas (Packages, Release, status) and dependency relations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass


def parse_stanza(text: str) -> dict[str, str]:
    """One deb822 paragraph → fields; continuation lines keep their newline and leading space."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line[0] in " \t":
            if key:
                fields[key] += "\n" + line
            continue
        key, _, value = line.partition(":")
        key = key.strip()
        fields[key] = value.strip()
    return fields


def iter_stanzas(text: str) -> Iterator[str]:
    """Raw paragraphs of a deb822 file (split on blank lines)."""
    for chunk in re.split(r"\n[ \t]*\n", text):
        if chunk.strip():
            yield chunk.strip("\n")


def format_stanza(fields: dict[str, str]) -> str:
    """Fields → a paragraph with a trailing newline (continuations are kept verbatim)."""
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


@dataclass(frozen=True)
class Relation:
    """One alternative of a dependency: ``name[:arch] [(op version)]``."""

    name: str
    op: str | None = None
    version: str | None = None
    arch: str | None = None  # "any", "native" or an architecture

    def __str__(self) -> str:
        s = self.name + (f":{self.arch}" if self.arch else "")
        return s + (f" ({self.op} {self.version})" if self.op else "")


_REL = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9+.\-]*)(?::(?P<arch>[a-z0-9\-]+))?\s*"
    r"(?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<ver>[^)\s]+)\s*\))?\s*"
    r"(?:\[[^\]]*\])?\s*(?:<[^>]*>\s*)*$"
)


def parse_relations(value: str) -> list[list[Relation]]:
    """``a (>= 1) | b, c:any`` → ``[[a>=1, b], [c]]`` (AND of OR-groups)."""
    groups: list[list[Relation]] = []
    for group in value.replace("\n", " ").split(","):
        if not group.strip():
            continue
        alts: list[Relation] = []
        for alt in group.split("|"):
            m = _REL.match(alt.strip())
            if not m:
                raise ValueError(f"cannot parse relation {alt.strip()!r}")
            alts.append(Relation(m["name"], m["op"], m["ver"], m["arch"]))
        groups.append(alts)
    return groups
