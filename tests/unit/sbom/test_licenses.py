"""Declared licenses from real Debian copyright files and real Python METADATA."""

from __future__ import annotations

from email.message import Message
from email.parser import Parser

import pytest
from support.sbom import DATA

from torchslim.sbom.licenses import (
    debian_license,
    debian_term,
    is_machine_readable,
    python_license,
    valid_spdx,
)


def _copyright(pkg: str) -> str:
    return (DATA / "copyright" / pkg).read_text()


def _metadata(rel: str) -> Message:
    return Parser().parsestr((DATA / "dist" / rel / "METADATA").read_text())


def test_dep5_files_paragraphs_become_one_spdx_expression() -> None:
    text = _copyright("libssl3")
    assert is_machine_readable(text)
    lic = debian_license(text)
    # "Apache-2.0" for OpenSSL itself, "Artistic or GPL-1+" for the Perl bits.
    assert lic.expression == "Apache-2.0 AND (Artistic-1.0 OR GPL-1.0-or-later)"
    assert lic.source.startswith("machine-readable") and lic.refs == ()
    assert debian_license(_copyright("zlib1g")).expression == "Zlib"


def test_names_off_the_spdx_list_become_declared_license_refs() -> None:
    lic = debian_license(_copyright("libffi8"))
    assert lic.expression is not None and valid_spdx(lic.expression)
    assert "(MPL-1.1 OR GPL-2.0-or-later OR LGPL-2.1-or-later)" in lic.expression
    assert "MIT" in lic.expression.split(" AND ")  # Debian's "Expat"
    ids = {r.id for r in lic.refs}
    assert "LicenseRef-debian-public-domain" in ids
    assert all(r.id in lic.expression and "/usr/share/doc/" in r.text for r in lic.refs)
    tz = debian_license(_copyright("tzdata"))
    assert tz.expression == "LicenseRef-debian-public-domain"


def test_free_form_copyright_is_read_only_for_common_licenses_references() -> None:
    text = _copyright("libcrypt1")
    assert not is_machine_readable(text)
    lic = debian_license(text)
    assert lic.expression is None and lic.spdx == "NOASSERTION"
    assert "free-form" in lic.source
    assert debian_license(None).source == "no copyright file in the image"


@pytest.mark.parametrize(
    ("name", "spdx"),
    [
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-2", "GPL-2.0-only"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("GFDL-NIV-1.3+", "GFDL-1.3-no-invariants-or-later"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("Expat", "MIT"),
        ("Apache-2", "Apache-2.0"),
        ("public-domain", None),
        ("GPL", None),
    ],
)
def test_debian_short_names(name: str, spdx: str | None) -> None:
    assert debian_term(name) == spdx


def test_python_license_expression_wins() -> None:
    lic = python_license(_metadata("click-8.5.1.dist-info"))
    assert (lic.expression, lic.source) == ("BSD-3-Clause", "METADATA License-Expression")
    torch = python_license(_metadata("torch-2.13.0+cpu.dist-info"))
    assert torch.expression is not None and "Apache-2.0 WITH LLVM-exception" in torch.expression
    assert valid_spdx(torch.expression)


def test_python_classifier_maps_and_bare_names_become_refs() -> None:
    vendored = _metadata("setuptools/_vendor/autocommand-2.2.2.dist-info")
    lic = python_license(vendored)
    assert (lic.expression, lic.source) == ("LGPL-3.0-only", "METADATA classifiers")
    mp = python_license(_metadata("mpmath-1.3.0.dist-info"))
    assert mp.expression == "LicenseRef-pypi-BSD"  # "License: BSD" says no which BSD
    assert [r.name for r in mp.refs] == ["BSD"]
    jinja = python_license(_metadata("jinja2-3.1.6.dist-info"))
    assert jinja.expression == "LicenseRef-pypi-BSD-License"
    assert jinja.source == "METADATA classifiers (no SPDX id)"


@pytest.mark.parametrize(
    ("expr", "ok"),
    [
        ("MIT", True),
        ("Apache-2.0 OR BSD-2-Clause", True),
        ("(MIT OR Apache-2.0) AND LicenseRef-x.1", True),
        ("Apache-2.0 WITH LLVM-exception", True),
        ("BSD", False),
        ("MIT AND", False),
        ("MIT WITH MIT", False),
        ("(MIT", False),
    ],
)
def test_valid_spdx(expr: str, ok: bool) -> None:
    assert valid_spdx(expr) is ok
