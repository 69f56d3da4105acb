"""Real images for the tests, built here (no registry, no network).

- hand-written layers (``Entry``, ``layer``, ``Spec``, ``write_oci``, ``write_archive``), so
  tests can also make hostile ones: '..' names, loops, bombs, truncated tars, missing blobs;
- trees and images made with torchslim.oci from real directories (``make_tree``,
  the ``image_factory`` and ``make_image`` fixtures);
- a static C server image for run tests (``build_image``, ``save_archive``, ``save_layout``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zstandard

from torchslim.cache import BlobStore
from torchslim.config import Compression
from torchslim.oci.archive import write_docker_archive
from torchslim.oci.empty import empty_image
from torchslim.oci.image import Image
from torchslim.oci.layer import write_layer_from_dir
from torchslim.oci.layout import write_oci_layout
from torchslim.oci.mutate import Healthcheck, append_layers, with_config

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


# ---- images from real trees (torchslim.oci) ----


LONG = "deep/" + "x" * 60 + "/" + "y" * 60 + "/file.txt"  # > 100 chars: needs a PAX header


def make_tree(root: Path, *, mtime: int = 1_700_000_000, uid: int = 0) -> Path:
    """A small tree with every kind of entry the layer writer must get right."""
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "etc").mkdir()
    (root / "a").mkdir()
    (root / "deep").mkdir()
    (root / "bin" / "tool").write_bytes(b"#!/bin/false\n" + b"\0" * 5000)
    (root / "bin" / "tool").chmod(0o755)
    (root / "bin" / "suid").write_bytes(b"setuid program")
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/sbin/nologin\n")
    (root / "etc" / "passwd").chmod(0o644)
    os.link(root / "etc" / "passwd", root / "etc" / "passwd.hard")
    (root / "etc" / "link").symlink_to("passwd")
    (root / "a" / "b").write_text("b")
    (root / "a-c").write_text("a-c")
    (root / "données.txt").write_text("é")
    long = root / LONG
    long.parent.mkdir(parents=True)
    long.write_text("long")
    for p in [root, *root.rglob("*")]:
        if os.geteuid() == 0:
            os.lchown(p, uid, uid)
        if not p.is_symlink():
            os.utime(p, (mtime, mtime))
    (root / "bin" / "suid").chmod(0o4755)  # after chown, which clears setuid
    return root


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


ImageFactory = Callable[..., Image]


@pytest.fixture
def image_factory(store: BlobStore) -> ImageFactory:
    """Build a one-layer image from a directory, with a runtime config."""

    def build(root: Path, compression: Compression = "gzip", cmd: list[str] | None = None) -> Image:
        layer = write_layer_from_dir(root, store, compression=compression)
        img = append_layers(empty_image(), [(layer, store, "torchslim: test layer")])
        return with_config(
            img,
            user="1000:1000",
            cmd=cmd or ["/bin/tool"],
            env={"PATH": "/bin"},
            healthcheck=Healthcheck(("CMD", "/bin/tool", "health"), interval_s=5, retries=2),
            labels={"org.opencontainers.image.title": "test"},
            created="2024-01-01T00:00:00Z",
        )

    return build


@pytest.fixture(scope="session")
def static_hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding /bin/hello, a statically linked C program (for podman run)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed; it builds the static test binary")
    work = tmp_path_factory.mktemp("hello")
    src = work / "hello.c"
    src.write_text(
        "#include <stdio.h>\n#include <unistd.h>\n"
        "int main(int c, char **v) {\n"
        '  printf("hello %s uid=%d\\n", c > 1 ? v[1] : "world", (int)getuid());\n'
        "  return 0;\n}\n"
    )
    root = work / "root"
    (root / "bin").mkdir(parents=True)
    proc = subprocess.run(
        [gcc, "-static", "-Os", "-s", "-o", str(root / "bin" / "hello"), str(src)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"gcc -static failed (is libc6-dev installed?): {proc.stderr[-300:]}")
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    return root


LayerSpec = Path | tuple[Path, Compression]
ImageMaker = Callable[..., Image]


@pytest.fixture
def make_image(store: BlobStore) -> ImageMaker:
    """Layers (directories, bottom first) over the empty image, with an optional PATH."""

    def build(
        layers: Sequence[LayerSpec], env: Mapping[str, str] | None = None, arch: str = "amd64"
    ) -> Image:
        written = []
        for spec in layers:
            root, comp = spec if isinstance(spec, tuple) else (spec, "gzip")
            layer = write_layer_from_dir(root, store, compression=comp)
            written.append((layer, store, f"probe test layer {root.name}"))
        img = append_layers(empty_image(arch), written)
        return with_config(img, env=env) if env else img

    return build


# ---- a static server image for run tests ----


PORT = 8080

# `/app serve` answers 200 on /health and 404 elsewhere; `/app smoke` prints and exits 0;
# `/app fail` prints to stderr and exits 3 (as a smoke command, or as a service that dies).
SERVER_C = r"""
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void reply(int c, const char *status, const char *body) {
    char out[256];
    int n = snprintf(out, sizeof out, "HTTP/1.0 %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", status, strlen(body), body);
    (void)!write(c, out, n);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "serve";
    if (!strcmp(mode, "smoke")) { printf("smoke ok: %s\n", argc > 2 ? argv[2] : ""); return 0; }
    if (strcmp(mode, "serve")) { fprintf(stderr, "boom: %s\n", mode); return 3; }
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(8080); a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) { perror("bind"); return 1; }
    fprintf(stderr, "listening on 8080\n");
    for (;;) {
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        char req[1024] = {0};
        (void)!read(c, req, sizeof req - 1);
        if (!strncmp(req, "GET /health ", 12)) reply(c, "200 OK", "ok\n");
        else reply(c, "404 Not Found", "no\n");
        close(c);
    }
}
"""


def build_server(tmp: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    src = tmp / "server.c"
    src.write_text(SERVER_C)
    root = tmp / "rootfs"
    root.mkdir()
    subprocess.run(["gcc", "-static", "-O2", "-o", str(root / "app"), str(src)], check=True)
    return root


def build_image(tmp: Path, cmd: list[str] | None = None) -> Image:
    root = build_server(tmp)
    store = BlobStore(tmp / "blobs")
    layer = write_layer_from_dir(root, store)
    image = append_layers(empty_image(), [(layer, store, "static test server")])
    return with_config(
        image,
        user=65534,
        entrypoint=["/app"],
        cmd=cmd or ["serve"],
        exposed_ports=[PORT],
        labels={"dev.torchslim.torch": "2.9.0+cpu"},
    )


def save_archive(image: Image, dest: Path, tag: str) -> Path:
    write_docker_archive(image, dest, repo_tags=[tag])
    return dest


def save_layout(image: Image, dest: Path, ref: str = "test") -> Path:
    write_oci_layout(image, dest, ref_name=ref)
    return dest


@pytest.fixture
def analyze_layers(tmp_path: Path) -> Callable[..., Any]:
    """Write an OCI layout from layer blobs and analyze it (for analyze and flatten tests)."""
    from torchslim.analyze import analyze, open_image

    counter = [0]

    def run(*layers: Blob, name: str = "app:v1", **cfg: Any) -> Any:
        counter[0] += 1
        dest = write_oci(tmp_path / f"img{counter[0]}", Spec(list(layers), **cfg))
        return analyze(open_image(f"oci:{dest}"), name=name)

    return run
