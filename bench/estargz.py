"""eStargz against gzip on the example: what the lazy-pulling format costs in bytes, and
what a lazy-pulling runtime would prefetch (the blob before each layer's landmark).

Builds examples/hello-torch twice with one cache: `--compression gzip`, then
`--compression estargz` (whose first build serves, puts the files the service opened
first, and serves again), both to OCI layouts, and prints per layer: bytes as pushed in
each format, the TOC's entries, and the files and bytes before `.prefetch.landmark`.

Run:  .venv/bin/python bench/estargz.py
Needs podman's runtime set-up (tests/podman/containers.conf) for the proof, as a build does.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello-torch"

from torchslim.oci.estargz import FOOTER_SIZE, PREFETCH_LANDMARK, toc_offset_of  # noqa: E402


def build(project: Path, cache: Path, compression: str, out: Path) -> None:
    env = {**os.environ, "TORCHSLIM_CACHE": str(cache)}
    env.setdefault("CONTAINERS_CONF", str(REPO / "tests" / "podman" / "containers.conf"))
    subprocess.run(
        [sys.executable, "-m", "torchslim.cli", "build", str(project), "--force",
         "--compression", compression, "--output", f"oci:{out}"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip


def layers(layout: Path) -> list[tuple[dict[str, Any], Path]]:
    index = json.loads((layout / "index.json").read_text())
    for entry in index["manifests"]:
        blob = layout / "blobs" / "sha256" / entry["digest"].split(":")[1]
        manifest = json.loads(blob.read_text())
        if "layers" in manifest:
            return [
                (lay, layout / "blobs" / "sha256" / lay["digest"].split(":")[1])
                for lay in manifest["layers"]
            ]
    raise SystemExit(f"no image manifest in {layout}")


def toc(blob: bytes) -> list[dict[str, Any]]:
    start = toc_offset_of(blob[-FOOTER_SIZE:])
    member = zlib.decompressobj(31).decompress(blob[start:])
    with tarfile.open(fileobj=io.BytesIO(member)) as tf:
        f = tf.extractfile(tf.next() or "")
        assert f is not None
        entries: list[dict[str, Any]] = json.loads(f.read())["entries"]
    return entries


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="estargz-bench-") as tmp_s:
        tmp = Path(tmp_s)
        project = tmp / "svc"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__"))
        cache = tmp / "cache"
        build(project, cache, "gzip", tmp / "gzip")
        build(project, cache, "estargz", tmp / "estargz")
        plain = layers(tmp / "gzip")
        lazy = layers(tmp / "estargz")
        print(f"{'layer':>6} {'gzip':>10} {'estargz':>10} {'ratio':>6} {'TOC entries':>11} "
              f"{'prefetched files':>16} {'prefetched bytes':>16}")  # fmt: skip
        total = [0, 0, 0]
        for n, ((p, _), (lay, path)) in enumerate(zip(plain, lazy, strict=True)):
            blob = path.read_bytes()
            entries = toc(blob)
            names = [e["name"] for e in entries]
            files = pre = 0
            if PREFETCH_LANDMARK in names:
                mark = names.index(PREFETCH_LANDMARK)
                files = sum(1 for e in entries[:mark] if e["type"] == "reg")
                pre = entries[mark]["offset"]
            total[0] += p["size"]
            total[1] += lay["size"]
            total[2] += pre
            print(f"{n:>6} {p['size'] / 1e6:>8.1f}MB {lay['size'] / 1e6:>8.1f}MB "
                  f"{lay['size'] / p['size']:>6.3f} {len(entries):>11} {files:>16} "
                  f"{pre / 1e6:>14.1f}MB")  # fmt: skip
            assert gzip.decompress(blob)  # a plain gzip stream to any reader
        ratio = total[1] / total[0]
        print(f"{'total':>6} {total[0] / 1e6:>8.1f}MB {total[1] / 1e6:>8.1f}MB {ratio:>6.3f} "
              f"{'':>11} {'':>16} {total[2] / 1e6:>14.1f}MB")  # fmt: skip


if __name__ == "__main__":
    main()
