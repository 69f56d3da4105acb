"""Unpacking real (tiny, built here) .deb files, and verified downloads from a local server."""

from __future__ import annotations

import hashlib
import http.server
import io
import lzma
import os
import socket
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from torchslim.cache import BlobStore
from torchslim.debian import DebianSpec, DebPackage
from torchslim.debian.deb import skip_reason, unpack_deb
from torchslim.debian.rootfs import fetch_debs
from torchslim.errors import IntegrityError, NetworkError

Entry = tuple[str, str, bytes | str, int]  # (name, kind f|d|l|h, data or link target, mode)


def _tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.mtime = 1_700_000_000
            if kind == "d":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                t.addfile(info)
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
                t.addfile(info)
            else:
                raw = data if isinstance(data, bytes) else data.encode()
                info.size = len(raw)
                t.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        out.append(header.encode() + data + (b"\n" if len(data) % 2 else b""))
    return b"".join(out)


def make_deb(entries: list[Entry], compression: str = "xz", md5sums: str = "") -> bytes:
    data = _tar(entries)
    if compression == "xz":
        member, data = "data.tar.xz", lzma.compress(data)
    else:
        member, data = "data.tar.zst", zstandard.ZstdCompressor().compress(data)
    control = _tar(
        [("./control", "f", "Package: tiny\n", 0o644), ("./md5sums", "f", md5sums, 0o644)]
    )
    return _ar(
        [("debian-binary", b"2.0\n"), ("control.tar.xz", lzma.compress(control)), (member, data)]
    )


TINY: list[Entry] = [
    ("./", "d", b"", 0o755),
    ("./usr/", "d", b"", 0o755),
    ("./usr/bin/", "d", b"", 0o755),
    ("./usr/bin/tool", "f", b"#!tool\n", 0o755),
    ("./usr/bin/tool-alias", "l", "tool", 0o777),
    ("./usr/bin/tool-hard", "h", "./usr/bin/tool", 0o755),
    ("./bin/", "d", b"", 0o755),
    ("./bin/legacy", "f", b"legacy\n", 0o4755),
    ("./usr/share/doc/tiny/copyright", "f", b"MIT\n", 0o644),
    ("./usr/share/doc/tiny/changelog.gz", "f", b"x" * 50, 0o644),
    ("./usr/share/man/man1/tool.1.gz", "f", b"y" * 30, 0o644),
    ("./usr/share/locale/de/LC_MESSAGES/tiny.mo", "f", b"z" * 7, 0o644),
]


@pytest.mark.parametrize("compression", ["xz", "zst"])
def test_unpack_keeps_links_and_modes_and_skips_docs(tmp_path: Path, compression: str) -> None:
    deb = tmp_path / "tiny.deb"
    deb.write_bytes(make_deb(TINY, compression, "abc  usr/bin/tool\n"))
    dest = tmp_path / "root"
    dest.mkdir()
    res = unpack_deb(deb, dest, "tiny")
    tool = dest / "usr/bin/tool"
    assert tool.read_bytes() == b"#!tool\n"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755
    assert os.readlink(dest / "usr/bin/tool-alias") == "tool"
    assert (dest / "usr/bin/tool-hard").stat().st_ino == tool.stat().st_ino
    # /bin is merged into /usr/bin; setuid bits survive.
    assert stat.S_IMODE((dest / "usr/bin/legacy").stat().st_mode) == 0o4755
    assert not (dest / "bin").exists()
    assert (dest / "usr/share/doc/tiny/copyright").read_text() == "MIT\n"
    assert not (dest / "usr/share/doc/tiny/changelog.gz").exists()
    assert not (dest / "usr/share/man").exists()
    assert sorted((s.path, s.size) for s in res.skipped) == [
        ("/usr/share/doc/tiny/changelog.gz", 50),
        ("/usr/share/locale/de/LC_MESSAGES/tiny.mo", 7),
        ("/usr/share/man/man1/tool.1.gz", 30),
    ]
    assert res.md5sums == {"usr/bin/tool": "abc"}


def test_unpack_refuses_dotdot(tmp_path: Path) -> None:
    deb = tmp_path / "evil.deb"
    deb.write_bytes(make_deb([("./usr/../../escape", "f", b"x", 0o644)]))
    (tmp_path / "root").mkdir()
    with pytest.raises(IntegrityError, match="unsafe path"):
        unpack_deb(deb, tmp_path / "root", "evil")
    assert not (tmp_path / "escape").exists()


def test_unpack_confines_symlinked_parents(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    deb = tmp_path / "evil.deb"
    deb.write_bytes(
        make_deb(
            [
                ("./etc/up", "l", "../../../../" + str(outside).lstrip("/"), 0o777),
                ("./etc/abs", "l", str(outside), 0o777),
                ("./etc/up/a", "f", b"a", 0o644),
                ("./etc/abs/b", "f", b"b", 0o644),
            ]
        )
    )
    root = tmp_path / "root"
    root.mkdir()
    unpack_deb(deb, root, "evil")
    assert list(outside.iterdir()) == []
    # Both links are resolved inside the root, as a chroot would.
    inside = root / str(outside).lstrip("/")
    assert sorted(p.name for p in inside.iterdir()) == ["a", "b"]


def test_skip_rules() -> None:
    assert skip_reason("usr/share/doc/pkg/copyright") is None
    assert skip_reason("usr/share/doc/pkg") is None
    assert skip_reason("usr/share/doc/pkg/README") == "usr/share/doc"
    assert skip_reason("usr/share/lintian/overrides/pkg") == "usr/share/lintian"
    assert skip_reason("usr/share/info/dir") == "usr/share/info"
    assert skip_reason("usr/share/zoneinfo/UTC") is None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over ``tmp_path/www`` (stands in for the mirror; no internet)."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(www), **kw)  # type: ignore[arg-type]

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", www
    finally:
        server.shutdown()
        server.server_close()


def _pkg(data: bytes, digest: str) -> DebPackage:
    return DebPackage("tiny", "1.0", "amd64", "pool/tiny.deb", digest, len(data), {})


def test_deb_with_wrong_hash_is_rejected_and_not_stored(
    tmp_path: Path, served: tuple[str, Path]
) -> None:
    url, www = served
    data = make_deb(TINY)
    (www / "pool").mkdir()
    (www / "pool/tiny.deb").write_bytes(data)
    store = BlobStore(tmp_path / "cache")
    spec = DebianSpec("bookworm", mirror=url)
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(IntegrityError, match=r"pool/tiny\.deb does not match its signed sha256"):
        fetch_debs(spec, [_pkg(data, wrong)], store, None)
    assert not store.root.exists() or list(store.root.iterdir()) == []
    right = "sha256:" + hashlib.sha256(data).hexdigest()
    fetch_debs(spec, [_pkg(data, right)], store, None)
    assert store.read_bytes(right) == data


def test_unreachable_mirror_is_network_error_naming_it(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = f"http://127.0.0.1:{port}/debian"
    spec = DebianSpec("bookworm", mirror=mirror)
    data = b"x"
    pkg = _pkg(data, "sha256:" + hashlib.sha256(data).hexdigest())
    with pytest.raises(NetworkError, match=rf"{mirror}.*`mirror`.*--mirror"):
        fetch_debs(spec, [pkg], BlobStore(tmp_path / "cache"), None)


def test_a_corrupt_cached_deb_is_evicted_and_fetched_again(
    tmp_path: Path, served: tuple[str, Path]
) -> None:
    url, www = served
    data = make_deb(TINY)
    (www / "pool").mkdir()
    (www / "pool/tiny.deb").write_bytes(data)
    warnings: list[str] = []
    store = BlobStore(tmp_path / "cache", warn=warnings.append)
    spec = DebianSpec("bookworm", mirror=url)
    right = "sha256:" + hashlib.sha256(data).hexdigest()
    fetch_debs(spec, [_pkg(data, right)], store, None)
    store.path(right).write_bytes(data[:-10] + b"x" * 10)
    fetch_debs(spec, [_pkg(data, right)], store, None)
    assert store.read_bytes(right) == data and len(warnings) == 1
