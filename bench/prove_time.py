"""What the proof costs: its time as a share of a cold build, and the bytes it put back.

For examples/hello-torch on the CPU build (torch 2.13.0) and, with --cuda, on the CUDA
build (torch 2.14.1 cu130 with its nvidia-* wheels and Triton, from the local indexes):

  * cold build time (empty cache), of which the proof took how long (target: <= 10 %);
  * warm rebuild after one app file: proof time again (the image changed, so it is proven
    again; an unchanged image reuses its cached proof);
  * bytes the proof put back (slimming changes it undid) and the proof's one-line summary.

Run:  .venv/bin/python bench/prove_time.py [--cuda]
Needs the Debian archive and PyPI (cold build) and a user namespace (the proof).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello-torch"


def build(project: Path, cache: Path, out: Path, *extra: str) -> tuple[float, dict]:
    report = out.with_suffix(".json")
    env = {**os.environ, "TORCHSLIM_CACHE": str(cache)}
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "torchslim.cli", "build", str(project), "--force"]
        + ["--output", f"oci:{out}", "--json", str(report), *extra],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - start, json.loads(report.read_text())


def reverted_bytes(report: dict) -> int:
    return sum(r["bytes"] for r in report["ledger"].get("reverted", []))


def measure(label: str, work: Path, *extra: str) -> None:
    project = work / label
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("pylock*.toml"))
    cache = work / f"cache-{label}"
    cold_s, cold = build(project, cache, work / f"{label}-cold", *extra)
    (project / "service" / "main.py").write_text(
        (project / "service" / "main.py").read_text() + "\n# touched\n"
    )
    warm_s, warm = build(project, cache, work / f"{label}-warm", *extra)
    proof_cold, proof_warm = cold["proof"]["seconds"], warm["proof"]["seconds"]
    print(f"{label}:")
    print(f"  cold build            {cold_s:8.1f} s")
    print(f"  proof in cold build   {proof_cold:8.1f} s  ({proof_cold / cold_s:6.1%} of cold)")
    print(f"  warm rebuild          {warm_s:8.1f} s")
    print(f"  proof in warm rebuild {proof_warm:8.1f} s  ({proof_warm / warm_s:6.1%} of warm)")
    print(f"  bytes put back        {reverted_bytes(cold):8d}")
    print(f"  image (uncompressed)  {cold['size']['uncompressed'] / 1e6:8.1f} MB")
    print(f"  proof: {cold['proof']['summary']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuda", action="store_true", help="also the torch 2.14.1 cu130 build")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="torchslim-bench-prove-") as tmp:
        measure("cpu", Path(tmp))
        if args.cuda:
            measure("cuda", Path(tmp), "--torch", "2.14.1", "--variant", "cu130")


if __name__ == "__main__":
    main()
