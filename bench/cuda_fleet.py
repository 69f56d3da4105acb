"""The CUDA service for a fleet (issue 23, item 8): examples/hello-torch as torch 2.14.1 +
CUDA 13.0 (profile inference), layer by layer, as gzip and as zstd:chunked, pushed to a
loopback registry and pulled by a fresh node (empty podman store, stock settings and
partial pulls on), then an app-only release pulled by a node holding the first.

Prints for each layer (and its parts): entries, uncompressed bytes, gzip and zstd:chunked
bytes; then pull seconds, pull + run + first 2xx on /health (the service runs on the CPU:
no GPU here), and the bytes and requests the registry served. One run each: the CUDA
image is 4 GB; the medians of alternating runs are bench/fleet.py's business on CPU.

Run:  .venv/bin/python bench/cuda_fleet.py [--torch 2.14.1 --variant cu130]
The CUDA wheels come from the pip configuration's indexes (about 3 GB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from fleet import (  # noqa: E402
    EXAMPLE,
    pull_and_answer,
    pushed_bytes,
    store,
    torchslim,
    update_bytes,
)
from support.registry import start_registry  # noqa: E402


def entries(host: str, repo: str, tag: str) -> dict[str, int]:
    """Each zstd:chunked layer's entries, from its table of contents (by layer digest)."""
    from torchslim.oci.chunked import TOC_POSITION

    m = httpx.get(
        f"http://{host}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).json()
    out = {}
    for layer in m["layers"]:
        offset, length, ulen, _ = (int(x) for x in layer["annotations"][TOC_POSITION].split(":"))
        blob = httpx.get(
            f"http://{host}/v2/{repo}/blobs/{layer['digest']}",
            headers={"Range": f"bytes={offset}-{offset + length - 1}"},
        ).content
        import zstandard

        toc = json.loads(zstandard.ZstdDecompressor().decompress(blob, max_output_size=ulen))
        out[layer["digest"]] = len(toc["entries"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch", default="2.14.1")
    ap.add_argument("--variant", default="cu130")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cuda-fleet-") as tmp_s:
        tmp = Path(tmp_s)
        project = tmp / "svc"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("pylock*.toml"))
        cfg = project / "torchslim.toml"
        text = cfg.read_text().replace('torch = "2.13.0"', f'torch = "{args.torch}"')
        cfg.write_text(text.replace('variant = "cpu"', f'variant = "{args.variant}"'))
        reg = start_registry(tmp / "registry", access_log=True)
        cache = Path.home() / ".cache" / "torchslim"  # the wheels are 3 GB: keep them
        try:
            host = reg.host
            secs, chunked = torchslim(
                project, cache, "--compression", "zstd:chunked",
                "--output", f"docker://{host}/cuda:v1",
            )  # fmt: skip
            _, gz = torchslim(project, cache, "--output", f"docker://{host}/cuda-gzip:v1")
            counts = entries(host, "cuda", "v1")
            gz_layers = {layer["name"]: layer for layer in gz["layers"]}  # type: ignore[union-attr]
            print(f"cold-ish build (wheels cached): {secs:.1f} s")
            print(
                f"{'layer':16} {'entries':>8} {'uncompressed':>14} {'gzip':>12} "
                f"{'zstd:chunked':>14}"
            )
            total = [0, 0, 0]
            for layer in chunked["layers"]:  # type: ignore[union-attr]
                name = layer["name"]
                g = gz_layers.get(name, {}).get("compressed", 0)
                n = counts.get(layer["digest"], 0)
                print(
                    f"{name:16} {n:8d} {layer['uncompressed'] / 1e6:11.1f} MB "
                    f"{g / 1e6:9.1f} MB {layer['compressed'] / 1e6:11.1f} MB"
                )
                total[0] += layer["uncompressed"]
                total[1] += g
                total[2] += layer["compressed"]
            print(
                f"{'total':16} {'':8} {total[0] / 1e6:11.1f} MB {total[1] / 1e6:9.1f} MB "
                f"{total[2] / 1e6:11.1f} MB"
            )
            print(f"pushed: gzip {pushed_bytes(host, 'cuda-gzip', 'v1') / 1e6:.1f} MB, "
                  f"zstd:chunked {pushed_bytes(host, 'cuda', 'v1') / 1e6:.1f} MB")  # fmt: skip
            for name, ref in (("zstd:chunked", "cuda:v1"), ("gzip", "cuda-gzip:v1")):
                for partial in (False, True):
                    with store(
                        tmp / f"store-{ref.replace(':', '-')}-{int(partial)}", partial=partial
                    ) as env:
                        got = pull_and_answer(env, reg, f"{host}/{ref}")
                    mode = "partial pulls on" if partial else "stock podman"
                    print(
                        f"fresh node, {mode:16} {name:13}: pull {got.pull:5.1f} s, first 2xx "
                        f"{got.answer:5.1f} s, {got.bytes / 1e6:8.1f} MB in {got.requests} requests"
                    )
            main_py = project / "service" / "main.py"
            main_py.write_text(main_py.read_text() + "\n# release 2\n")
            torchslim(
                project, cache, "--compression", "zstd:chunked",
                "--output", f"docker://{host}/cuda:v2",
            )  # fmt: skip
            moved = update_bytes(tmp / "upd", reg, f"{host}/cuda:v1", f"{host}/cuda:v2")
            print(f"app-only release on a node holding v1: {moved / 1e3:.1f} kB served")
        finally:
            reg.stop()


if __name__ == "__main__":
    main()
