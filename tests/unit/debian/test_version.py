"""Debian version ordering against dpkg's own rules (deb-version(7))."""

import pytest

from torchslim.debian.version import compare_versions, satisfies

CASES = [
    ("1.0", "1.0", 0),
    ("1.0", "1.1", -1),
    ("1.10", "1.9", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0+b1", -1),
    ("1.0a", "1.0", 1),
    ("1.0a", "1.0+", -1),  # letters sort before non-letters
    ("1:0.1", "2.0", 1),  # epoch wins
    ("0:2.0", "2.0", 0),
    ("2.36-9+deb12u10", "2.36-9+deb12u9", 1),
    ("2.36-9", "2.36-10", -1),
    ("1.2.3-1", "1.2.3", 1),
    ("1:1.2.13.dfsg-1", "1:1.2.0", 1),
    ("3.0.11-1~deb12u2", "3.0.11-1", -1),
    ("5.1.1alpha+20120614", "5.4.1-1", -1),
    ("1.0-1", "1.0-1ubuntu1", -1),
    ("12.2.0-14", "12.2.0-14+deb12u1", -1),
    ("a", "b", -1),
    ("1.0.0", "1.0", 1),
]


@pytest.mark.parametrize(("a", "b", "want"), CASES)
def test_compare(a: str, b: str, want: int) -> None:
    assert compare_versions(a, b) == want
    assert compare_versions(b, a) == -want


@pytest.mark.parametrize(
    ("version", "op", "wanted", "ok"),
    [
        ("2.36-9", ">=", "2.34", True),
        ("2.36-9", "<<", "2.36", False),
        ("2.36-9", ">>", "2.36", True),
        ("1.0", "=", "1.0", True),
        ("1.0", "<=", "1.0~", False),
        ("1.0", ">", "1.0", True),  # obsolete '>' means '>='
    ],
)
def test_satisfies(version: str, op: str, wanted: str, ok: bool) -> None:
    assert satisfies(version, op, wanted) is ok
