"""The files rootfs.assemble writes where maintainer scripts would have: os-release."""

from __future__ import annotations

from pathlib import Path

from torchslim.debian.rootfs import _os_release
from torchslim.debian.spec import DebianSpec


def _fields(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return {k: v.strip('"') for k, _, v in (line.partition("=") for line in lines)}


def test_os_release_written_when_base_files_has_none_carries_version_id(tmp_path: Path) -> None:
    _os_release(tmp_path, DebianSpec("trixie"))
    fields = _fields(tmp_path / "etc/os-release")
    assert fields["ID"] == "debian"
    assert fields["VERSION_ID"] == "13"  # what scanners key vulnerability data on
    assert fields["VERSION_CODENAME"] == "trixie"


def test_os_release_of_an_unnumbered_suite_has_no_version_id(tmp_path: Path) -> None:
    _os_release(tmp_path, DebianSpec("sid"))
    fields = _fields(tmp_path / "etc/os-release")
    assert "VERSION_ID" not in fields and fields["VERSION_CODENAME"] == "sid"


def test_base_files_os_release_is_kept(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    _os_release(tmp_path, DebianSpec("bookworm"))
    assert (tmp_path / "etc/os-release").read_text() == 'ID=debian\nVERSION_ID="12"\n'
