"""Real artifacts for the network/e2e tests: Debian packages and wheels, cached on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from support.images import Entry, dir_entries, file

CACHE = Path(os.environ.get("TORCHSLIM_TEST_CACHE", Path.home() / ".cache" / "torchslim-tests"))
SITE = "usr/local/lib/python3.11/site-packages"
TORCH_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")


def deb(name: str) -> Path:
    """A real .deb from deb.debian.org (the apt sources of this machine), cached."""
    d = CACHE / "debs"
    d.mkdir(parents=True, exist_ok=True)
    hits = sorted(d.glob(f"{name}_*.deb"))
    if not hits:
        subprocess.run(["apt-get", "download", name], cwd=d, check=True, capture_output=True)
        hits = sorted(d.glob(f"{name}_*.deb"))
    return hits[-1]


def install_debs(names: list[str], root: Path) -> dict[str, dict[str, int]]:
    """Unpack each package into ``root`` and write its dpkg status and file list.

    Returns package → {path: size} of its regular files, for the tests' expectations.
    """
    status: list[str] = []
    files: dict[str, dict[str, int]] = {}
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = deb(name)
        one = root.parent / f"unpack-{name}"
        subprocess.run(["dpkg-deb", "-x", str(path), str(one)], check=True)
        control = subprocess.run(
            ["dpkg-deb", "-f", str(path)], check=True, capture_output=True, text=True
        ).stdout
        status.append(
            control.strip().replace("\nVersion:", "\nStatus: install ok installed\nVersion:", 1)
        )
        paths, sizes = [], {}
        for p in sorted(one.rglob("*")):
            rel = p.relative_to(one).as_posix()
            paths.append("/" + rel)
            if p.is_file() and not p.is_symlink():
                sizes[rel] = p.stat().st_size
        files[name] = sizes
        (info / f"{name}.list").write_text("/.\n" + "\n".join(paths) + "\n")
        shutil.copytree(one, root, symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(one)
    (root / "var/lib/dpkg/status").write_text("\n\n".join(status) + "\n")
    return files


def wheels(specs: list[str]) -> list[Path]:
    d = CACHE / "wheels"
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["pip", "download", "--no-deps", "--only-binary", ":all:", "-q", "-d", str(d), *specs],
        check=True,
    )
    out = []
    for spec in specs:
        stem = spec.split("==")[0].replace("-", "_").lower()
        out += [p for p in d.glob("*.whl") if p.name.lower().startswith(stem + "-")]
    return sorted(set(out))


def install_wheels(paths: list[Path], root: Path) -> None:
    """Install with pypa/installer, as pip would, into /usr/local of ``root``."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    site = root / SITE
    dest = SchemeDictionaryDestination(
        {
            "purelib": str(site),
            "platlib": str(site),
            "scripts": str(root / "usr/local/bin"),
            "data": str(root / "usr/local"),
            "headers": str(root / "usr/local/include/python3.11"),
        },
        interpreter="/usr/local/bin/python3",
        script_kind="posix",
    )
    for p in paths:
        with WheelFile.open(p) as src:
            install(src, dest, {"INSTALLER": b"pip\n"})


def torch_entries(keep: tuple[str, ...]) -> list[Entry]:
    """Members of the real torch wheel whose path starts with one of ``keep``."""
    out: list[Entry] = []
    with zipfile.ZipFile(TORCH_WHEEL) as z:
        for info in z.infolist():
            if info.is_dir() or not info.filename.startswith(keep):
                continue
            out.append(
                file(
                    f"{SITE}/{info.filename}",
                    z.read(info),
                    0o755 if "/bin/" in info.filename else 0o644,
                )
            )
    return out


def tree(root: Path) -> list[Entry]:
    return dir_entries(root)
