"""Bytes uploaded per push against a loopback docker-registry: the shared-base effect.

Pushes, to a registry started here (Debian's docker-registry on 127.0.0.1):
  1. a "base" image (OS-like layer + a torch-sized layer) under app/base,
  2. a service image FROM it (its own app + model layers) under app/svc-a,
  3. the same service again (expect 0 bytes uploaded),
  4. a second service on the same base under app/svc-b (expect only its own layers:
     base blobs are mounted across repositories, never re-sent),
and prints a table: blobs uploaded / skipped / mounted and bytes for each push.

Run:  .venv/bin/python bench/push_bytes.py [--base-mib 64]
Needs /usr/bin/docker-registry (apt-get install docker-registry); no network.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.registry import start_registry  # noqa: E402

from torchslim.cache import BlobStore  # noqa: E402
from torchslim.oci.empty import empty_image  # noqa: E402
from torchslim.oci.image import Image  # noqa: E402
from torchslim.oci.layer import write_layer_from_dir  # noqa: E402
from torchslim.oci.mutate import append_layers, with_config  # noqa: E402
from torchslim.oci.registry import PushResult, push_image  # noqa: E402


def layer_dir(root: Path, files: dict[str, int], seed: int) -> Path:
    rng = random.Random(seed)
    for rel, size in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size))  # incompressible: bytes on the wire = file size
    return root


def build(
    base: Image, work: Path, store: BlobStore, layers: list[dict[str, int]], seed: int
) -> Image:
    added = []
    for i, files in enumerate(layers):
        layer = write_layer_from_dir(layer_dir(work / f"l{seed}-{i}", files, seed * 100 + i), store)
        added.append((layer, store, f"bench layer {i}"))
    img = append_layers(base, added)
    return with_config(img, cmd=["/app/run"], user="1000:1000", created="2024-01-01T00:00:00Z")


def mib(n: int) -> str:
    return f"{n / (1 << 20):9.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base-mib", type=int, default=64, help="size of the torch-like base layer")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="torchslim-push-bench-") as tmp:
        work = Path(tmp)
        reg = start_registry(work / "registry")
        try:
            store = BlobStore(work / "cache")
            base = build(
                empty_image(),
                work,
                store,
                [{"usr/lib/libc.so": 4 << 20}, {"site/torch/lib.so": args.base_mib << 20}],
                seed=1,
            )
            svc_a = build(base, work, store, [{"app/a.py": 200_000}, {"model/a.bin": 2 << 20}], 2)
            svc_b = build(base, work, store, [{"app/b.py": 300_000}, {"model/b.bin": 3 << 20}], 3)
            runs: list[tuple[str, PushResult, float]] = []
            for label, img, ref in [
                ("base", base, "app/base:1"),
                ("service A", svc_a, "app/svc-a:1"),
                ("service A again", svc_a, "app/svc-a:1"),
                ("service B, same base", svc_b, "app/svc-b:1"),
            ]:
                t0 = time.monotonic()
                res = push_image(
                    img, f"{reg.host}/{ref}", tls_verify=False, mount_from=["app/base"]
                )
                runs.append((f"{label} -> {ref}", res, time.monotonic() - t0))
        finally:
            reg.stop()
    own_b = sum(
        layer.descriptor.size
        for layer in svc_b.layers()
        if layer.digest not in {b.digest for b in base.layers()}
    ) + len(svc_b.config_bytes())
    print(
        f"{'push':40} {'up':>3} {'skip':>4} {'mount':>5} {'MiB uploaded':>12} "
        f"{'MiB not sent':>12} {'s':>6}"
    )
    for label, res, secs in runs:
        print(
            f"{label:40} {len(res.uploaded):3} {len(res.skipped):4} {len(res.mounted):5} "
            f"{mib(res.bytes_uploaded):>12} {mib(res.bytes_skipped):>12} {secs:6.2f}"
        )
    print(f"bytes uploaded, second push of service A: {runs[2][1].bytes_uploaded}")
    print(
        f"bytes uploaded, service B on the shared base: {runs[3][1].bytes_uploaded} "
        f"(its own layers + config: {own_b})"
    )
    ok = runs[2][1].bytes_uploaded == 0 and runs[3][1].bytes_uploaded == own_b
    print("OK" if ok else "UNEXPECTED: more bytes than the service's own layers were sent")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
