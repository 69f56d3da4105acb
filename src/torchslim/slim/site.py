"""A read-mostly view of one site-packages directory, with the per-run caches guards need.

Rules match paths; some also need a look at the files (is this ELF strippable? is this
``tests`` directory imported by its package?). Those answers are cached here, once per
``slim_tree`` run, so no rule reads a file twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from torchslim.slim.elf import ElfInfo, elf_info
from torchslim.slim.preload import torch_preloads

TEST_DIR_NAMES = frozenset({"tests", "test"})

# Packages whose ``tests``/``test`` directories hold only their own test suite and data,
# so such a directory qualifies even without ``test_*.py`` files (e.g. ``tests/data``).
# The import check still applies to them.
KNOWN_TEST_SUITE_PACKAGES = frozenset(
    {
        "sympy",
        "networkx",
        "mpmath",
        "numpy",
        "scipy",
        "pandas",
        "sklearn",
        "skimage",
        "matplotlib",
        "statsmodels",
        "pyarrow",
        "fsspec",
        "jinja2",
        "markupsafe",
    }
)

_FROM_IMPORT = re.compile(
    r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)", re.MULTILINE
)
_DOTTED = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_NAME = re.compile(r"[A-Za-z_]\w*")


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"  # what ``\w`` matches in a str pattern


def _suite_words(text: str) -> list[tuple[int, int]]:
    """Where a suite name (``tests``, ``test``) stands as a whole word in ``text``.

    A reference to a suite names it, so a file without one cannot hold one. ``str.find``
    and the word-boundary test by hand: a twentieth of a ``\b(?:test|tests)\b`` scan.
    """
    spans: list[tuple[int, int]] = []
    for word in TEST_DIR_NAMES:
        at = text.find(word)
        while at != -1:
            end = at + len(word)
            if (at == 0 or not _is_word_char(text[at - 1])) and (
                end == len(text) or not _is_word_char(text[end])
            ):
                spans.append((at, end))
            at = text.find(word, at + 1)
    return sorted(spans)


def _dotted_names_at(text: str, spans: list[tuple[int, int]]) -> set[str]:
    """The dotted names (``a.b.c``) that hold one of ``spans``: only a name with a suite
    word among its parts can name a suite, so the rest of the module is not scanned."""
    names: set[str] = set()
    for start, end in spans:
        while start > 0 and (_is_word_char(text[start - 1]) or text[start - 1] == "."):
            start -= 1
        while end < len(text) and (_is_word_char(text[end]) or text[end] == "."):
            end += 1
        names.update(_DOTTED.findall(text[start:end]))
    return names


def _is_test_file(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


@dataclass
class SiteView:
    """One site-packages directory on disk (``site``) and cached facts about its files."""

    site: Path
    _elf: dict[str, ElfInfo | None] = field(default_factory=dict)
    _suites: dict[str, bool] = field(default_factory=dict)
    _refs: dict[str, frozenset[str]] = field(default_factory=dict)

    def elf(self, relpath: str) -> ElfInfo | None:
        """ELF facts for a file relative to site-packages, or None when it is not ELF."""
        if relpath not in self._elf:
            self._elf[relpath] = elf_info(self.site / relpath)
        return self._elf[relpath]

    def torch_preloads(self) -> frozenset[str]:
        """Libraries (relative paths) that ``import torch`` preloads from this site."""
        return torch_preloads(self.site)

    def test_suite_dir(self, relpath: str) -> str | None:
        """The outermost ``tests``/``test`` directory holding ``relpath`` (below a package)."""
        parts = relpath.split("/")
        for i in range(1, len(parts) - 1):
            if parts[i] in TEST_DIR_NAMES:
                return "/".join(parts[: i + 1])
        return None

    def is_removable_test_suite(self, dirrel: str) -> bool:
        """True when ``dirrel`` is a test suite that nothing else in its package imports."""
        if dirrel not in self._suites:
            self._suites[dirrel] = self._check_suite(dirrel)
        return self._suites[dirrel]

    def _check_suite(self, dirrel: str) -> bool:
        top = dirrel.split("/", 1)[0]
        d = self.site / dirrel
        if not d.is_dir() or d.is_symlink():
            return False
        if top not in KNOWN_TEST_SUITE_PACKAGES and not any(
            _is_test_file(p.name) for p in d.rglob("*.py")
        ):
            return False
        dotted = dirrel.replace("/", ".")
        refs = self._package_refs(top)
        return not any(r == dotted or r.startswith(dotted + ".") for r in refs)

    def _package_refs(self, top: str) -> frozenset[str]:
        """Dotted names that non-test modules of top-level package ``top`` mention or import
        (of the modules that name a suite at all: only such names are asked about).

        Text-based on purpose (fast, and over-approximates: a dotted name in a string or
        comment also counts, which only makes the rule keep more). Files inside
        ``tests``/``test`` directories are not scanned: test code importing test code
        does not make a suite needed at run time.
        """
        if top in self._refs:
            return self._refs[top]
        refs: set[str] = set()
        base = self.site / top
        for py in sorted(base.rglob("*.py")) if base.is_dir() else []:
            rel = py.relative_to(self.site).as_posix()
            if self.test_suite_dir(rel) is not None:
                continue
            try:
                text = py.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            spans = _suite_words(text)
            if not spans:
                continue  # most files (6 in 7 of torch's): skip the scans below
            refs.update(_dotted_names_at(text, spans))
            pkg = rel.rsplit("/", 1)[0].split("/")  # the package a module lives in
            for dots, mod, names in _FROM_IMPORT.findall(text):
                if dots:
                    up = len(dots) - 1
                    if up > len(pkg) - 1:
                        continue
                    anchor = pkg[: len(pkg) - up]
                    origin = ".".join(anchor + ([mod] if mod else []))
                else:
                    origin = mod
                refs.add(origin)
                refs.update(f"{origin}.{n}" for n in _NAME.findall(names))
        self._refs[top] = frozenset(refs)
        return self._refs[top]
