"""Build small real images for the analyze tests: OCI layouts and docker-archives.

Layers are written by hand (tarfile + gzip/zstd) so tests can also make
hostile ones: '..' names, loops, bombs, truncated tars, missing blobs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


@dataclass
class Entry:
    name: str
    data: bytes = b""
    kind: str = "file"  # file | dir | symlink | hardlink
    mode: int = 0o644
    uid: int = 0
    linkname: str = ""


def file(name: str, data: bytes | int, mode: int = 0o644) -> Entry:
    return Entry(name, data if isinstance(data, bytes) else os.urandom(data), mode=mode)


def tar_bytes(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.mode, ti.uid = e.mode, e.uid
            if e.kind == "dir":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif e.kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, e.linkname
                tar.addfile(ti)
            elif e.kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, e.linkname
                tar.addfile(ti)
            else:
                ti.size = len(e.data)
                tar.addfile(ti, io.BytesIO(e.data))
    return buf.getvalue()


def dir_entries(root: Path, prefix: str = "") -> list[Entry]:
    """Every path under ``root`` as tar entries (links kept, ownership 0, modes kept)."""
    out: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = Path(dirpath) / name
            rel = prefix + full.relative_to(root).as_posix()
            st = full.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out.append(Entry(rel, kind="symlink", linkname=os.readlink(full), mode=mode))
            elif stat.S_ISDIR(st.st_mode):
                out.append(Entry(rel, kind="dir", mode=mode))
            elif stat.S_ISREG(st.st_mode):
                out.append(Entry(rel, full.read_bytes(), mode=mode))
    return out


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if how == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    return data


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Blob:
    data: bytes  # as stored (compressed)
    diff_id: str
    media_type: str


def layer(entries: list[Entry] | bytes, how: str = "gzip") -> Blob:
    raw = entries if isinstance(entries, bytes) else tar_bytes(entries)
    return Blob(compress(raw, how), sha(raw), MEDIA[how])


@dataclass
class Spec:
    layers: list[Blob]
    user: str | None = None
    healthcheck: list[str] | None = None
    history: list[str] = field(default_factory=list)

    def config(self) -> bytes:
        inner: dict[str, Any] = {}
        if self.user is not None:
            inner["User"] = self.user
        if self.healthcheck is not None:
            inner["Healthcheck"] = {"Test": self.healthcheck}
        hist = self.history or [f"layer {i}" for i in range(len(self.layers))]
        cfg = {
            "architecture": "amd64",
            "os": "linux",
            "config": inner,
            "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in self.layers]},
            "history": [{"created_by": h} for h in hist],
        }
        return json.dumps(cfg, sort_keys=True).encode()

    def manifest(self) -> bytes:
        cfg = self.config()
        m = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(cfg),
                "size": len(cfg),
            },
            "layers": [
                {"mediaType": b.media_type, "digest": sha(b.data), "size": len(b.data)}
                for b in self.layers
            ],
        }
        return json.dumps(m, sort_keys=True).encode()


def write_oci(dest: Path, spec: Spec, ref: str | None = None, skip_blobs: bool = False) -> Path:
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    manifest = spec.manifest()
    for data in [manifest, spec.config()] + ([] if skip_blobs else [b.data for b in spec.layers]):
        (blobs / sha(data).split(":")[1]).write_bytes(data)
    desc: dict[str, Any] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha(manifest),
        "size": len(manifest),
    }
    if ref:
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref}
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return dest


def write_archive(dest: Path, spec: Spec, repo_tags: list[str] | None = None) -> Path:
    """Legacy docker-archive (as `docker save` before v25): manifest.json + <id>/layer.tar."""
    cfg = spec.config()
    cfg_name = sha(cfg).split(":")[1] + ".json"
    names = []
    with tarfile.open(dest, "w") as tar:

        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))

        for b in spec.layers:
            name = f"{sha(b.data).split(':')[1]}/layer.tar"
            if name not in names:
                add(name, b.data)
            names.append(name)
        add(cfg_name, cfg)
        man = [{"Config": cfg_name, "RepoTags": repo_tags or [], "Layers": names}]
        add("manifest.json", json.dumps(man).encode())
    return dest
