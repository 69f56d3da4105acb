"""Declared licenses as SPDX expressions: Debian copyright files and Python METADATA.

Debian: a machine-readable (DEP-5) ``copyright`` file names a license on every ``Files``
paragraph; the package's license is all of them joined with AND (each file carries its
own). A free-form file yields the ``/usr/share/common-licenses/NAME`` files it points
at, or nothing. Python: ``License-Expression`` (PEP 639), else a ``License`` field that
is already SPDX, else the trove classifiers, else the ``License`` text as a name.

Names that are not on the SPDX list become ``LicenseRef-…`` ids (SPDX 2.3 §10) with a
note saying where the text is; nothing is guessed.
"""

from __future__ import annotations

import functools
import re
from email.message import Message

from cyclonedx.spdx import fixup_id, is_expression, is_supported_id

from torchslim.sbom.model import License, LicenseRef

# Debian short names (DEP-5 "Short name" table) whose SPDX id is not the same string.
_DEBIAN_NAMES = {
    "expat": "MIT",
    "mit": "MIT",
    "zlib": "Zlib",
    "isc": "ISC",
    "apache-2": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "artistic": "Artistic-1.0",
    "artistic-1": "Artistic-1.0",
    "artistic-2": "Artistic-2.0",
    "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
    "x11": "X11",
    "cc0-1.0": "CC0-1.0",
    "sleepycat": "Sleepycat",
    "psf-2": "PSF-2.0",
    "mpl-1.1": "MPL-1.1",
    "mpl-2.0": "MPL-2.0",
}
_GNU = re.compile(r"^(A?GPL|LGPL|GFDL(?:-NIV)?)-(\d(?:\.\d)?)(\+?)$", re.IGNORECASE)

_CLASSIFIERS = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "ISC License (ISCL)": "ISC",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "zlib/libpng License": "Zlib",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
}
_CLASSIFIER_PREFIX = "License :: "
_COMMON_LICENSES = re.compile(
    r"/usr/share/common-licenses/([A-Za-z0-9][A-Za-z0-9.+_-]*[A-Za-z0-9+])"
)
_TOKEN = re.compile(r"\(|\)|[^\s()]+")


@functools.cache
def _is_exception(name: str) -> bool:
    return is_expression(f"MIT WITH {name}")


def valid_spdx(expression: str) -> bool:
    """Is ``expression`` SPDX syntax over listed ids, exceptions and ``LicenseRef-`` ids?"""
    tokens = _TOKEN.findall(expression)
    depth, want_term, after_with = 0, True, False
    for tok in tokens:
        if tok == "(" and want_term:
            depth += 1
        elif tok == ")" and not want_term and depth:
            depth -= 1
        elif tok in ("AND", "OR") and not want_term:
            want_term = True
        elif tok == "WITH" and not want_term and not after_with:
            want_term, after_with = True, True
            continue
        elif want_term and after_with:
            if not _is_exception(tok):
                return False
            want_term = False
        elif want_term and (
            is_supported_id(tok) or re.fullmatch(r"LicenseRef-[A-Za-z0-9.-]+", tok)
        ):
            want_term = False
        else:
            return False
        after_with = False
    return bool(tokens) and depth == 0 and not want_term


def ref_id(prefix: str, name: str) -> str:
    """``LicenseRef-<prefix>-<name>`` with only the characters SPDX allows in an id."""
    clean = re.sub(r"[^A-Za-z0-9.-]+", "-", name.replace("+", "-plus")).strip("-.")
    return f"LicenseRef-{prefix}-{clean or 'unnamed'}"


def debian_term(name: str) -> str | None:
    """The SPDX id of one Debian short name, or None when it has none."""
    key = name.strip()
    if key.lower() in _DEBIAN_NAMES:
        return _DEBIAN_NAMES[key.lower()]
    m = _GNU.match(key)
    if m:
        family, version, plus = m.group(1).upper(), m.group(2), m.group(3)
        version = version if "." in version else version + ".0"
        if family == "GFDL-NIV":
            return f"GFDL-{version}-no-invariants-{'or-later' if plus else 'only'}"
        return f"{family}-{version}-{'or-later' if plus else 'only'}"
    fixed = fixup_id(key)
    return fixed if fixed and is_supported_id(fixed) and "+" not in fixed else None


def _debian_ref(name: str) -> LicenseRef:
    rid = ref_id("debian", name)
    text = (
        f"Debian copyright short name {name!r}; the license text is in the copyright file "
        "of each package that uses it, /usr/share/doc/<package>/copyright in the image"
    )
    return LicenseRef(rid, name, text)


def _debian_expression(line: str, refs: dict[str, LicenseRef]) -> str:
    """One DEP-5 ``License:`` first line (``GPL-2+ or Artistic``) as an SPDX expression."""
    parts = re.split(r"\s*,?\s+(or|and)\s+|\s*,\s*", line.strip(), flags=re.IGNORECASE)
    out: list[str] = []
    for i, part in enumerate(parts):
        if part is None or not part.strip():
            continue
        if i % 2 == 1 and part.lower() in ("or", "and"):
            out.append(part.upper())
            continue
        if out and out[-1] not in ("AND", "OR"):
            out.append("AND")  # a bare comma between names
        spdx = debian_term(part)
        if spdx is None:
            ref = refs.setdefault(part, _debian_ref(part))
            spdx = ref.id
        out.append(spdx)
    while out and out[-1] in ("AND", "OR"):
        out.pop()
    return " ".join(out)


def _and(expressions: list[str]) -> str | None:
    """All of ``expressions`` must hold: one AND over their distinct terms, sorted."""
    terms: set[str] = set()
    for e in expressions:
        if e and " OR " not in e:
            terms.update(e.split(" AND "))
        elif e:
            terms.add(e)
    unique = sorted(terms)
    if not unique:
        return None
    if len(unique) == 1:
        return unique[0]
    return " AND ".join(f"({e})" if " OR " in e else e for e in unique)


def _paragraphs(text: str) -> list[dict[str, str]]:
    """deb822 paragraphs, field → first line (continuation lines dropped)."""
    out: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            m = re.match(r"^([A-Za-z][A-Za-z0-9-]*):\s*(.*)$", line)
            if m:
                fields[m.group(1).lower()] = m.group(2).strip()
        if fields:
            out.append(fields)
    return out


def is_machine_readable(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0]
    return first.lower().startswith("format:") and "copyright-format" in first


def debian_license(copyright_text: str | None) -> License:
    """The declared license of a Debian package from its ``copyright`` file."""
    if copyright_text is None:
        return License(None, "no copyright file in the image")
    refs: dict[str, LicenseRef] = {}
    if is_machine_readable(copyright_text):
        exprs = [
            _debian_expression(p["license"], refs)
            for p in _paragraphs(copyright_text)
            if "files" in p and p.get("license")
        ]
        expr = _and(exprs)
        source = "machine-readable copyright file (DEP-5)"
    else:
        names = sorted(set(_COMMON_LICENSES.findall(copyright_text)))
        expr = _and([_debian_expression(n, refs) for n in names])
        source = "free-form copyright file: /usr/share/common-licenses references"
        if expr is None:
            source = "free-form copyright file names no license this tool can read"
    used = tuple(sorted((r for r in refs.values() if expr and r.id in expr), key=lambda r: r.id))
    return License(expr, source, used)


def _pypi_ref(kind: str, name: str) -> LicenseRef:
    text = f"Python package metadata {kind} {name!r}; not an SPDX license id"
    return LicenseRef(ref_id("pypi", name), name, text)


def python_license(metadata: Message) -> License:
    """The declared license of a Python distribution from its METADATA."""
    expr = (metadata.get("License-Expression") or "").strip()
    if expr and valid_spdx(expr):
        return License(expr, "METADATA License-Expression")
    field = (metadata.get("License") or "").strip()
    short = field if field and "\n" not in field and len(field) <= 100 else ""
    if short and valid_spdx(short):
        return License(short, "METADATA License")
    named = [
        c.removeprefix(_CLASSIFIER_PREFIX).split(" :: ")[-1]
        for c in metadata.get_all("Classifier") or []
        if c.startswith(_CLASSIFIER_PREFIX)
    ]
    mapped = [_CLASSIFIERS[n] for n in named if n in _CLASSIFIERS]
    if mapped:
        return License(_and(mapped), "METADATA classifiers")
    if expr or short:
        ref = _pypi_ref("License-Expression" if expr else "License", expr or short)
        return License(ref.id, "METADATA License (not an SPDX expression)", (ref,))
    if named:
        refs = sorted({_pypi_ref("classifier", n) for n in named}, key=lambda r: r.id)
        return License(_and([r.id for r in refs]), "METADATA classifiers (no SPDX id)", tuple(refs))
    return License(None, "METADATA names no license")
