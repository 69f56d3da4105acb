"""Assemble a distroless-like root filesystem from resolved Debian packages."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from torchslim.cache import BlobStore
from torchslim.config import Progress
from torchslim.debian.cacerts import write_ca_bundle
from torchslim.debian.control import format_stanza
from torchslim.debian.deb import USR_ALIASES, unpack_deb
from torchslim.debian.fetch import Fetcher
from torchslim.debian.spec import DebianSpec, DebPackage, RootfsInfo, SkippedFile
from torchslim.errors import BuildError

SHELLS = ("bin/sh", "bin/bash", "bin/dash", "usr/bin/sh", "usr/bin/bash", "usr/bin/dash")


def fetch_debs(
    spec: DebianSpec, packages: list[DebPackage], store: BlobStore, progress: Progress | None
) -> None:
    """Every .deb into the store, each checked against the sha256 of the signed index (a
    cached one too: a corrupt copy is evicted and fetched again)."""
    missing = [p for p in packages if not store.verify(p.sha256)]
    if not missing:
        return
    total = sum(p.size for p in missing)
    done = 0
    with Fetcher(spec.mirror) as fetcher:
        for p in missing:
            fetcher.to_store(p.filename, store, p.sha256, p.size)
            done += p.size
            if progress:
                progress("debian packages", done, total)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _symlink(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    os.symlink(target, path)


def _merged_usr(dest: Path, after: bool = False) -> None:
    """Debian 12+ layout: /bin, /lib, ... are symlinks into /usr (package paths are rewritten).
    bin, sbin, lib and lib64 always; lib32/libx32 only once a package put files there."""
    for alias in USR_ALIASES:
        if alias in ("lib32", "libx32") and not (after and (dest / "usr" / alias).is_dir()):
            continue
        (dest / "usr" / alias).mkdir(parents=True, exist_ok=True)
        if not (dest / alias).is_symlink():
            _symlink(dest / alias, f"usr/{alias}")


def _users(dest: Path, spec: DebianSpec) -> None:
    if spec.uid in (0, 65534):
        raise BuildError(f"field `user` = {spec.uid} is reserved; use a uid such as 1000")
    nologin = "/sbin/nologin"
    _write(
        dest / "etc/passwd",
        f"root:x:0:0:root:/root:{nologin}\n"
        f"nobody:x:65534:65534:nobody:/nonexistent:{nologin}\n"
        f"{spec.user}:x:{spec.uid}:{spec.uid}::{spec.home}:{nologin}\n",
    )
    _write(dest / "etc/group", f"root:x:0:\nnogroup:x:65534:\n{spec.user}:x:{spec.uid}:\n")
    (dest / "root").mkdir(mode=0o700, exist_ok=True)
    home = dest / spec.home.lstrip("/")
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    # The layer writer owns ownership; doing it here too keeps a chroot faithful.
    with contextlib.suppress(PermissionError):
        os.chown(home, spec.uid, spec.uid)


def _dirs(dest: Path) -> None:
    for d in ("tmp", "var/tmp"):
        p = dest / d
        p.mkdir(parents=True, exist_ok=True)
        p.chmod(0o1777)
    for d in ("etc/ld.so.conf.d", "proc", "sys", "dev", "run", "var/lib/dpkg/status.d"):
        (dest / d).mkdir(parents=True, exist_ok=True)


# Debian release numbers: scanners match vulnerabilities on os-release's ID + VERSION_ID.
DEBIAN_VERSIONS = {"bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}


def _os_release(dest: Path, spec: DebianSpec) -> None:
    """base-files ships /etc/os-release (a link to ../usr/lib/os-release); write one if not,
    with VERSION_ID when the suite is a numbered release."""
    if (dest / "etc/os-release").exists():
        return
    number = DEBIAN_VERSIONS.get(spec.suite)
    version = f'VERSION_ID="{number}"\nVERSION="{number} ({spec.suite})"\n' if number else ""
    pretty = f"{number} ({spec.suite})" if number else f"({spec.suite})"
    _write(
        dest / "etc/os-release",
        f'PRETTY_NAME="Debian GNU/Linux {pretty}"\nNAME="Debian GNU/Linux"\n{version}'
        f"VERSION_CODENAME={spec.suite}\nID=debian\n",
    )


NSSWITCH = """\
passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      files
services:       files
ethers:         files
rpc:            files
"""


def _nsswitch(dest: Path) -> None:
    """Debian's template (made by a postinst there) minus the nss modules we do not ship."""
    template = dest / "usr/share/base-files/nsswitch.conf"
    if template.is_file():  # trixie's base-files carries the template
        _write(dest / "etc/nsswitch.conf", template.read_text())
    elif not (dest / "etc/nsswitch.conf").exists():
        _write(dest / "etc/nsswitch.conf", NSSWITCH)


def _timezone(dest: Path) -> None:
    """tzdata's postinst sets the zone from debconf; a container defaults to UTC."""
    if (dest / "usr/share/zoneinfo/Etc/UTC").exists():
        _symlink(dest / "etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
        _write(dest / "etc/timezone", "Etc/UTC\n")


def _ldconfig(dest: Path) -> None:
    """ld.so.conf + ld.so.cache; the NVIDIA toolkit adds its libraries through both."""
    _write(dest / "etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n")
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    # With -r, ldconfig reads -f (and its `include` globs) and writes -C under dest, no root
    # needed. -X: packages already ship their soname links. The host's ldconfig only indexes
    # libraries of its own machine type: for a foreign arch the cache comes out empty and
    # ld.so falls back to Debian's default multiarch dirs (the NVIDIA toolkit re-runs
    # ldconfig inside the container anyway).
    cmd = [ldconfig, "-X", "-r", str(dest), "-C", "/etc/ld.so.cache", "-f", "/etc/ld.so.conf"]
    attempts = [cmd]
    if os.geteuid() != 0 and shutil.which("unshare"):
        attempts.append(["unshare", "--user", "--map-root-user", *cmd])
    err = ""
    for attempt in attempts:
        try:
            r = subprocess.run(attempt, capture_output=True, text=True)
        except OSError as e:
            err = str(e)
            continue
        if r.returncode == 0 and (dest / "etc/ld.so.cache").is_file():
            # ldconfig writes its aux-cache anyway (inodes, mtimes): not reproducible, unused.
            aux = dest / "var/cache/ldconfig/aux-cache"
            aux.unlink(missing_ok=True)
            return
        err = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    raise BuildError(
        f"cannot write /etc/ld.so.cache with ldconfig ({err}); run as root or allow "
        "unprivileged user namespaces (unshare -r)"
    )


def _ssl_paths(dest: Path) -> None:
    """OpenSSL looks in /usr/lib/ssl (its OPENSSLDIR); the `openssl` package, which we skip,
    links it to /etc/ssl. cert.pem makes Python's default context find the bundle."""
    ssl = dest / "usr/lib/ssl"
    ssl.mkdir(parents=True, exist_ok=True)
    if not (ssl / "certs").exists():
        _symlink(ssl / "certs", "/etc/ssl/certs")
    _symlink(ssl / "cert.pem", "/etc/ssl/certs/ca-certificates.crt")


def _python(dest: Path, spec: DebianSpec) -> tuple[str, str]:
    exe = f"/usr/bin/python{spec.python}"
    if not (dest / exe.lstrip("/")).is_file():
        raise BuildError(f"python{spec.python} was not unpacked at {exe}; check field `python`")
    _symlink(dest / "usr/bin/python3", f"python{spec.python}")
    # As the python images do: a `cmd = ["python", ...]` copied from a Dockerfile runs.
    _symlink(dest / "usr/bin/python", f"python{spec.python}")
    site = f"/usr/local/lib/python{spec.python}/dist-packages"
    (dest / site.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return exe, site


def _status(dest: Path, pkg: DebPackage, md5sums: dict[str, str], skipped: set[str]) -> None:
    """distroless-style manifest: one status stanza per package (+ md5sums of kept files)."""
    fields = dict(pkg.control)
    fields.setdefault("Package", pkg.name)
    fields.setdefault("Version", pkg.version)
    fields.setdefault("Architecture", pkg.arch)
    ordered = {"Package": fields.pop("Package"), "Status": "install ok installed", **fields}
    d = dest / "var/lib/dpkg/status.d"
    _write(d / pkg.name, format_stanza(ordered))
    lines = [f"{m}  {p}\n" for p, m in sorted(md5sums.items()) if "/" + p not in skipped]
    if lines:
        _write(d / f"{pkg.name}.md5sums", "".join(lines))


def glibc_version(packages: list[DebPackage]) -> str:
    for p in packages:
        if p.name == "libc6":
            m = re.match(r"(?:\d+:)?(\d+\.\d+)", p.version)
            if m:
                return m[1]
    raise BuildError("libc6 is not in the package set; it is needed by everything, re-resolve")


def assemble(
    spec: DebianSpec,
    packages: list[DebPackage],
    dest: Path,
    store: BlobStore,
    progress: Progress | None = None,
) -> RootfsInfo:
    """Fetch, verify and unpack ``packages`` into ``dest`` (empty or absent), then write the
    files maintainer scripts would have made. Same package set → byte-identical files."""
    if dest.exists() and any(dest.iterdir()):
        raise BuildError(f"rootfs destination {dest} is not empty; remove it first")
    dest.mkdir(parents=True, exist_ok=True)
    packages = sorted(packages, key=lambda p: p.name)
    fetch_debs(spec, packages, store, progress)
    _merged_usr(dest)
    skipped: list[SkippedFile] = []
    total, done = sum(p.size for p in packages), 0  # progress is in bytes, as everywhere
    for pkg in packages:
        un = unpack_deb(store.path(pkg.sha256), dest, pkg.name)
        skipped += un.skipped
        _status(dest, pkg, un.md5sums, {s.path for s in un.skipped})
        done += pkg.size
        if progress:
            progress("unpacking debian packages", done, total)
    _merged_usr(dest, after=True)
    _dirs(dest)
    _users(dest, spec)
    _os_release(dest, spec)
    _nsswitch(dest)
    _timezone(dest)
    if (dest / "usr/share/ca-certificates").is_dir():
        write_ca_bundle(dest)
        _ssl_paths(dest)
    exe, site = _python(dest, spec)
    _ldconfig(dest)
    shells = [s for s in SHELLS if (dest / s).exists() or (dest / s).is_symlink()]
    if shells:
        raise BuildError(
            f"a shell ended up in the rootfs (/{', /'.join(shells)}); remove the package that "
            "brings it from `apt`"
        )
    return RootfsInfo(
        python_exe=exe,
        python_version=spec.python,
        site_packages=site,
        glibc=glibc_version(packages),
        packages=packages,
        owners={spec.home: (spec.uid, spec.uid)},
        skipped=skipped,
    )
