"""ld.so.cache and ld.so.conf of an image, read the way ld.so and ldconfig read them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.slim import build_so, link_args

from torchslim.slim.closure import check_closure
from torchslim.slim.ldcache import ld_conf_dirs, parse_ld_cache

SYS = "/usr/lib/x86_64-linux-gnu"


def _ldconfig() -> str:
    tool = shutil.which("ldconfig") or "/sbin/ldconfig"
    if not Path(tool).exists():
        pytest.skip("ldconfig not installed")
    return tool


def test_host_cache_matches_ldconfig_print() -> None:
    cache = Path("/etc/ld.so.cache")
    if not cache.exists():
        pytest.skip("no /etc/ld.so.cache")
    printed = subprocess.run([_ldconfig(), "-p"], capture_output=True, text=True, check=True)
    expected = set()
    for line in printed.stdout.splitlines()[1:]:
        m = re.match(r"\s*(\S+) \((.*)\) => (\S+)", line)
        if m and "x86-64" in m.group(2):
            expected.add((m.group(1), m.group(3)))
    parsed = parse_ld_cache(cache.read_bytes())
    assert {(k, p) for k, paths in parsed.items() for p in paths} == expected
    assert len(expected) > 10


@pytest.mark.parametrize("fmt", ["new", "compat"])
def test_image_cache_written_by_ldconfig(tmp_path: Path, fmt: str) -> None:
    root = _vendor_root(tmp_path)
    _run_ldconfig(root, fmt)
    assert parse_ld_cache((root / "etc/ld.so.cache").read_bytes()) == {
        "libvend.so.1": ["/opt/vendor/lib/libvend.so.1"]
    }
    assert parse_ld_cache(b"not a cache") == {}
    assert parse_ld_cache((root / "etc/ld.so.cache").read_bytes(), "EM_AARCH64") == {}


def test_conf_dirs_follow_includes() -> None:
    files = {
        "/etc/ld.so.conf": "include /etc/ld.so.conf.d/*.conf\ninclude extra.conf\n",
        "/etc/ld.so.conf.d/a.conf": "# comment\n/usr/local/lib\n\nhwcap 0 nosegneg\n",
        "/etc/ld.so.conf.d/b.conf": "/opt/b/lib:/opt/c/lib/\n",
        "/etc/extra.conf": "/opt/extra\n",
    }

    def glob(pattern: str) -> list[str]:
        return sorted(
            p for p in files if Path(p).match(pattern) and p.count("/") == pattern.count("/")
        )

    dirs = ld_conf_dirs(files.get, glob)
    assert dirs == ["/usr/local/lib", "/opt/b/lib", "/opt/c/lib", "/opt/extra"]


def test_closure_finds_libraries_through_the_image_cache_and_conf(tmp_path: Path) -> None:
    if not Path(SYS, "libc.so.6").exists():
        pytest.skip(f"{SYS}/libc.so.6 not present")
    root = _vendor_root(tmp_path)
    build_so(root / "srv/libuser.so", "int u(void) { return 0; }\n",
             *link_args(root / "opt/vendor/lib/libvend.so.1"))  # fmt: skip
    trees = [(root, "/"), (Path(SYS), SYS)]
    _run_ldconfig(root, "new")
    conf = root / "etc/ld.so.conf.d/vendor.conf"
    conf.unlink()  # the cache alone
    assert check_closure(trees, check_prefixes=["/srv"]) == []
    (root / "etc/ld.so.cache").unlink()
    assert [m.needed for m in check_closure(trees, check_prefixes=["/srv"])] == ["libvend.so.1"]
    conf.write_text("/opt/vendor/lib\n")  # ld.so.conf alone (ldconfig runs at start)
    assert check_closure(trees, check_prefixes=["/srv"]) == []


def _vendor_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    build_so(root / "opt/vendor/lib/libvend.so.1", "int v(void) { return 1; }\n",
             "-Wl,-soname,libvend.so.1")  # fmt: skip
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (root / "etc/ld.so.conf.d/vendor.conf").write_text("/opt/vendor/lib\n")
    return root


def _run_ldconfig(root: Path, fmt: str) -> None:
    cmd = [_ldconfig(), "-X", "-r", str(root), "-C", "/etc/ld.so.cache", "-f", "/etc/ld.so.conf"]
    subprocess.run([*cmd, "-c", fmt], check=True, capture_output=True)
    (root / "var/cache/ldconfig/aux-cache").unlink(missing_ok=True)
