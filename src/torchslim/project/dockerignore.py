"""Docker's ``.dockerignore`` patterns, matched as Docker matches them.

Docker's rules differ from ``.gitignore``'s (and so from pathspec's gitwildmatch):

* every pattern is anchored at the context root: ``*.md`` matches ``README.md`` but not
  ``docs/x.md``; ``**/*.md`` matches at any depth;
* a pattern is cleaned first (Go's ``filepath.Clean``): ``/foo/bar/`` == ``foo/bar``,
  ``./x`` == ``x``;
* ``*`` and ``?`` never cross ``/``; ``**`` matches any number of directories, zero too;
* a pattern that matches a directory matches everything below it;
* ``!`` makes an exception, and the last pattern that matches a path decides;
* a line is a comment only when ``#`` is its first character.

This is a port of moby's ``patternmatcher`` (``MatchesOrParentMatches``) and
``ignorefile.ReadAll``, including which excluded directories a walk may skip.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DockerPattern:
    text: str  # cleaned, without the "!"
    exclusion: bool  # a "!" exception
    regex: re.Pattern[str]
    suffix: str | None = None  # moby's "suffix match" for "**name" (no other wildcard)

    def match(self, path: str) -> bool:
        if self.suffix is not None:
            tail = self.suffix
            return path.endswith(tail) or (tail.startswith("/") and path == tail[1:])
        return self.regex.match(path) is not None


def clean(pattern: str) -> str:
    """Go's ``filepath.Clean`` on a slash path, then no leading ``/``."""
    cleaned = posixpath.normpath(pattern)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if len(cleaned) > 1 and cleaned.startswith("/"):
        cleaned = cleaned[1:]
    return cleaned


def _regex(pattern: str) -> re.Pattern[str]:
    """moby's translation, character for character (``[...]`` is passed through)."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1  # "**/" is "**"
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch in ".+()|{}$":
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append("\\" + pattern[i])
                i += 1
            else:
                out.append("\\\\")
        else:
            out.append(ch)
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return re.compile(re.escape(pattern) + "$")  # Docker rejects it; match it literally


def compile_pattern(line: str) -> DockerPattern | None:
    """One ``.dockerignore`` line (already without comments) → a pattern; None if empty."""
    text = line.strip()
    if not text:
        return None
    exclusion = text.startswith("!")
    if exclusion:
        text = text[1:].strip()
        if not text:
            return None
    text = clean(text)
    rest = text[2:]
    suffix = rest if text.startswith("**") and rest and not re.search(r"[*?\[\\]", rest) else None
    return DockerPattern(text, exclusion, _regex(text), suffix)


def read_lines(text: str) -> list[str]:
    """The pattern lines of a ``.dockerignore``: ``#`` comments and blanks dropped."""
    lines = []
    for i, raw in enumerate(text.splitlines()):
        if i == 0:
            raw = raw.removeprefix("\ufeff")
        if raw.startswith("#") or not raw.strip():
            continue
        lines.append(raw.strip())
    return lines


class PatternList:
    """Patterns in order; the last one that matches a path (or a parent of it) decides."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.patterns = [p for p in map(compile_pattern, lines) if p is not None]

    def matches(self, path: str) -> bool:
        """Whether ``path`` (project-relative, ``/``-separated) is excluded."""
        parts = path.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            if pattern.match(path) or any(pattern.match(p) for p in parents):
                matched = not pattern.exclusion
        return matched

    def may_skip_dir(self, path: str) -> bool:
        """Whether a walk may skip an excluded directory: as Docker does, only when no
        exception pattern is written under it."""
        prefix = path + "/"
        return not any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)

    def __add__(self, other: PatternList) -> PatternList:
        merged = PatternList(())
        merged.patterns = self.patterns + other.patterns
        return merged


def patterns(lines: Sequence[str]) -> PatternList:
    return PatternList(lines)


__all__ = ["DockerPattern", "PatternList", "clean", "compile_pattern", "patterns", "read_lines"]
