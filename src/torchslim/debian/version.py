"""Debian version comparison (deb-version(7)): ``[epoch:]upstream[-revision]``.

Implemented here rather than borrowed from python-apt so the resolver runs on any host.
"""

from __future__ import annotations

import functools


def _split(version: str) -> tuple[int, str, str]:
    epoch_s, sep, rest = version.partition(":")
    if not sep:
        epoch, rest = 0, version
    else:
        epoch = int(epoch_s) if epoch_s.isdigit() else 0
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        return epoch, rest, ""
    return epoch, upstream, revision


def _order(c: str) -> int:
    """Sort weight of one non-digit character: ``~`` < end < letters < others."""
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        # Non-digit prefix, character by character ("" sorts after "~" and before letters).
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            cb = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ca != cb:
                return -1 if ca < cb else 1
            i += 1
            j += 1
        # Digit run, numerically.
        si = i
        while i < len(a) and a[i].isdigit():
            i += 1
        sj = j
        while j < len(b) and b[j].isdigit():
            j += 1
        na = int(a[si:i] or "0")
        nb = int(b[sj:j] or "0")
        if na != nb:
            return -1 if na < nb else 1
    return 0


def compare_versions(a: str, b: str) -> int:
    """Return -1, 0 or 1 as ``a`` sorts before, equal to or after ``b`` (dpkg semantics)."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def satisfies(version: str, op: str, wanted: str) -> bool:
    """Does ``version`` meet the relation ``op wanted`` (``<<``, ``<=``, ``=``, ``>=``, ``>>``)?"""
    c = compare_versions(version, wanted)
    if op == "=":
        return c == 0
    if op == ">=":
        return c >= 0
    if op == "<=":
        return c <= 0
    if op == ">>":
        return c > 0
    if op == "<<":
        return c < 0
    # Obsolete single ``<`` / ``>`` mean ``<=`` / ``>=`` (deb-control(5)).
    if op == "<":
        return c <= 0
    if op == ">":
        return c >= 0
    raise ValueError(f"unknown version relation {op!r}")


version_key = functools.cmp_to_key(compare_versions)
