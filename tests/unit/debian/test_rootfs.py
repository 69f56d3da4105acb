"""rootfs: the files it writes where maintainer scripts would have (os-release), and, against
the real Debian archive (network): signatures, cached indices, and a rootfs that runs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from torchslim.cache import BlobStore
from torchslim.debian import DEFAULT_MIRROR, DebianSpec, assemble, resolve
from torchslim.debian.fetch import Fetcher
from torchslim.debian.index import fetch_packages, fetch_release
from torchslim.debian.release import verify_clearsigned
from torchslim.debian.rootfs import _os_release
from torchslim.errors import IntegrityError


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


INRELEASE = f"{DEFAULT_MIRROR}/dists/bookworm/InRelease"


@pytest.fixture(scope="module")
def inrelease() -> bytes:
    with Fetcher(DEFAULT_MIRROR) as f:
        data = f.get_bytes("dists/bookworm/InRelease")
    assert data is not None
    return data


@pytest.mark.network
def test_real_inrelease_verifies(inrelease: bytes) -> None:
    text = verify_clearsigned(inrelease, INRELEASE).decode()
    assert "Codename: bookworm" in text
    assert "BEGIN PGP" not in text  # only the signed body comes back


@pytest.mark.network
def test_tampered_inrelease_fails(inrelease: bytes) -> None:
    # Change one hex digit of a signed hash line: the signature must no longer match.
    i = inrelease.index(b"main/binary-amd64/Packages.xz") - 20
    flipped = b"0" if inrelease[i : i + 1] != b"0" else b"1"
    tampered = inrelease[:i] + flipped + inrelease[i + 1 :]
    with pytest.raises(IntegrityError, match=r"signature check failed for http://\S+/InRelease"):
        verify_clearsigned(tampered, INRELEASE)


@pytest.mark.network
def test_unsigned_inrelease_fails(inrelease: bytes) -> None:
    body = inrelease.split(b"\n\n", 1)[1].split(b"-----BEGIN PGP SIGNATURE-----")[0]
    with pytest.raises(IntegrityError, match="InRelease"):
        verify_clearsigned(body, INRELEASE)


@pytest.mark.network
def test_warm_index_is_read_from_store(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "cache")
    with Fetcher(DEFAULT_MIRROR) as f:
        release = fetch_release(f, "bookworm")
        first = fetch_packages(f, release, "bookworm", "amd64", store)
    # A fetcher pointed at nowhere still gets the same index: nothing is downloaded again.
    with Fetcher("http://127.0.0.1:9/debian") as offline:
        again = fetch_packages(offline, release, "bookworm", "amd64", store)
    assert again == first
    assert "\nPackage: libc6\n" in first


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chroot"), reason="needs root+chroot")
@pytest.mark.network
def test_bookworm_rootfs_end_to_end(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "cache")
    spec = DebianSpec("bookworm", arch="amd64")
    t0 = time.monotonic()
    packages = resolve(spec, store)
    dest = tmp_path / "rootfs"
    info = assemble(spec, packages, dest, store)
    elapsed = time.monotonic() - t0
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"\nbookworm rootfs: {len(packages)} packages, {size / 1e6:.1f} MB, {elapsed:.1f}s")

    assert info.python_exe == "/usr/bin/python3.11"
    assert info.site_packages == "/usr/local/lib/python3.11/dist-packages"
    assert info.glibc.startswith("2.36")
    assert (dest / "usr/bin/python3.11").is_file()
    assert os.readlink(dest / "usr/bin/python3") == "python3.11"
    for shell in ("bin/sh", "bin/bash", "bin/dash", "usr/bin/sh", "usr/bin/bash"):
        assert not os.path.lexists(dest / shell), shell
    names = {p.name for p in packages}
    assert not names & {"dpkg", "apt", "debconf", "perl-base", "openssl", "python3", "dash"}
    assert "app:x:1000:1000::/home/app:/sbin/nologin" in (dest / "etc/passwd").read_text()
    assert (dest / "etc/group").read_text().count(":1000:") == 1
    assert (dest / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (dest / "home/app").is_dir()
    assert info.owners == {"/home/app": (1000, 1000)}
    bundle = (dest / "etc/ssl/certs/ca-certificates.crt").read_text()
    assert bundle.count("BEGIN CERTIFICATE") > 100
    assert (dest / "etc/ld.so.cache").stat().st_size > 0
    assert not (dest / "var/cache/ldconfig/aux-cache").exists()
    assert "ID=debian" in (dest / "etc/os-release").read_text()
    assert 'VERSION_ID="12"' in (dest / "etc/os-release").read_text()
    status = (dest / "var/lib/dpkg/status.d/libc6").read_text()
    assert "Package: libc6\nStatus: install ok installed\n" in status
    assert info.skipped and not (dest / "usr/share/man").exists()

    # Same package set → byte-identical tree.
    again = tmp_path / "again"
    assemble(spec, packages, again, store)
    assert _tree(dest) == _tree(again)

    out = subprocess.run(
        [shutil.which("chroot") or "chroot", str(dest), "/usr/bin/python3.11", "-B", "-c",
         "import ssl, json, sqlite3, sys; print(ssl.OPENSSL_VERSION);"
         "print(len(ssl.create_default_context().get_ca_certs()));"
         "print('/usr/local/lib/python3.11/dist-packages' in sys.path)"],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin"},
    ).stdout.split("\n")  # fmt: skip
    assert out[0].startswith("OpenSSL 3.")
    assert int(out[1]) > 100
    assert out[2] == "True"


def _tree(root: Path) -> list[tuple[str, str]]:
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        st = p.lstat()
        if p.is_symlink():
            out.append((rel, "-> " + os.readlink(p)))
        elif p.is_file():
            out.append((rel, f"{st.st_mode:o} {hashlib.sha256(p.read_bytes()).hexdigest()}"))
        else:
            out.append((rel, f"{st.st_mode:o}"))
    return out
