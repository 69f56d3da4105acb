"""Seconds per GB for `torchslim analyze` beside `gzip -dc` of the same layers, same run.

    python bench/analyze_speed.py [oci:DIR | docker-archive:FILE]

Without an argument it builds (once, cached) a ~1 GB image: the whole torch
2.13 CPU wheel unpacked into one gzip layer plus a 300 MB data layer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.artifacts import CACHE, SITE, TORCH_WHEEL  # noqa: E402
from support.images import Blob, Spec, write_oci  # noqa: E402

from torchslim.analyze import analyze, open_image  # noqa: E402

MEDIA_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _gzip_layer(tar_path: Path) -> Blob:
    gz = tar_path.with_suffix(".tar.gz")
    with gz.open("wb") as out:
        subprocess.run(["gzip", "-6", "-n", "-c", str(tar_path)], stdout=out, check=True)
    raw_digest = subprocess.run(
        ["sha256sum", str(tar_path)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    return Blob(gz.read_bytes(), "sha256:" + raw_digest, MEDIA_GZIP)


def build(dest: Path) -> Path:
    if (dest / "index.json").exists():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        t1 = Path(tmp) / "torch.tar"
        with zipfile.ZipFile(TORCH_WHEEL) as z, tarfile.open(t1, "w") as tar:
            for info in z.infolist():
                if info.is_dir():
                    continue
                ti = tarfile.TarInfo(f"{SITE}/{info.filename}")
                ti.size = info.file_size
                with z.open(info) as src:
                    tar.addfile(ti, src)
        t2 = Path(tmp) / "data.tar"
        with tarfile.open(t2, "w") as tar:
            for i in range(30):  # semi-compressible data, like model weights
                blob = (os.urandom(1 << 19) + bytes(1 << 19)) * 10
                ti = tarfile.TarInfo(f"models/shard-{i:02d}.bin")
                ti.size = len(blob)
                import io

                tar.addfile(ti, io.BytesIO(blob))
        layers = [_gzip_layer(t1), _gzip_layer(t2)]
        shutil.rmtree(dest, ignore_errors=True)
        write_oci(dest, Spec(layers))
    return dest


def main() -> None:
    ref = sys.argv[1] if len(sys.argv) > 1 else f"oci:{build(CACHE / 'bench' / 'speed-oci')}"
    image = open_image(ref)
    blobs = [image.open_layer(lay) for lay in image.layers()]
    for b in blobs:
        b.close()
    # gzip -dc of the same layer blobs (OCI layout: the blob files themselves)
    root = Path(ref.split(":", 1)[1])
    paths = [root / "blobs" / "sha256" / lay.digest.split(":")[1] for lay in image.layers()]
    for p in paths:  # warm the page cache for both contenders
        subprocess.run(["cat", str(p)], stdout=subprocess.DEVNULL, check=True)
    t0 = time.perf_counter()
    for p in paths:
        subprocess.run(["gzip", "-dc", str(p)], stdout=subprocess.DEVNULL, check=True)
    t_gzip = time.perf_counter() - t0
    t0 = time.perf_counter()
    a = analyze(image, name="bench:v1")
    t_analyze = time.perf_counter() - t0
    gb = a.uncompressed / 1e9
    print(f"image: {ref}")
    print(
        f"layers: {len(a.layers)}, compressed {a.compressed / 1e9:.2f} GB, "
        f"uncompressed {gb:.2f} GB, {a.file_count} files"
    )
    print(f"gzip -dc          : {t_gzip:6.2f} s  = {t_gzip / gb:5.2f} s/GB")
    print(
        f"torchslim analyze : {t_analyze:6.2f} s  = {t_analyze / gb:5.2f} s/GB "
        f"({t_analyze / t_gzip:.2f}x gzip -dc)"
    )


if __name__ == "__main__":
    main()
