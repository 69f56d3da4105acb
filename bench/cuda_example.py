"""Benchmark: examples/hello-torch as a CUDA image (torch 2.14.1, cu130), full vs inference.

Prints per-layer sizes (compressed and uncompressed) for each profile, the slimming
ledger of `inference`, and — when you pass the published size of the official
`pytorch/pytorch:<torch>-cuda<X.Y>-cudnn9-runtime` image with --official-bytes
(uncompressed, as `docker image ls` shows after a pull) — the ratio against it.
Target: inference <= 50 % of that official runtime image, uncompressed.

Run:  .venv/bin/python bench/cuda_example.py [--official-bytes N] [--torch 2.14.1 --variant cu130]
It downloads nothing here beyond PyPI metadata: the CUDA wheels come from the pip
configuration's indexes (about 3 GB of wheels, 5.5 GB installed; a cold run takes minutes).
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


def build(project: Path, out: Path, profile: str) -> tuple[float, dict]:
    report = out.with_suffix(".json")
    start = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torchslim.cli",
            "build",
            str(project),
            "--force",
            "--profile",
            profile,
            "--output",
            f"oci:{out}",
            "--json",
            str(report),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env=os.environ,
    )
    return time.monotonic() - start, json.loads(report.read_text())


def mb(n: float) -> str:
    return f"{n / 1e6:9.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch", default="2.14.1")
    ap.add_argument("--variant", default="cu130")
    ap.add_argument(
        "--official-bytes",
        type=int,
        default=None,
        help="uncompressed size of the official pytorch/pytorch runtime image",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        project = tmp / "hello-cuda"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("pylock*.toml"))
        cfg = project / "torchslim.toml"
        text = cfg.read_text().replace('torch = "2.13.0"', f'torch = "{args.torch}"')
        cfg.write_text(text.replace('variant = "cpu"', f'variant = "{args.variant}"'))
        reports = {}
        for profile in ("full", "inference", "used"):
            seconds, reports[profile] = build(project, tmp / profile, profile)
            print(f"built profile {profile} in {seconds:.0f} s")
        print()
        names = [layer["name"] for layer in reports["full"]["layers"]]
        print(f"{'layer':16} {'full (unc.)':>13} {'inference (unc.)':>17} {'inference (gz)':>15}")
        for name in names:
            full = next(x for x in reports["full"]["layers"] if x["name"] == name)
            inf = next((x for x in reports["inference"]["layers"] if x["name"] == name), None)
            print(
                f"{name:16} {mb(full['uncompressed'])} {mb(inf['uncompressed'] if inf else 0):>17}"
                f" {mb(inf['compressed'] if inf else 0):>15}"
            )
        totals = {p: r["size"] for p, r in reports.items()}
        print(
            f"{'total':16} {mb(totals['full']['uncompressed'])} "
            f"{mb(totals['inference']['uncompressed']):>17} "
            f"{mb(totals['inference']['compressed']):>15}"
        )
        ratio = totals["inference"]["uncompressed"] / totals["full"]["uncompressed"]
        print(f"inference / full (uncompressed): {ratio:.1%}")
        used = reports["used"]["size"]  # the opt-in profile: what the served proof loaded
        print(f"used: {mb(used['uncompressed'])} uncompressed, {mb(used['compressed'])} gz")
        print()
        print("removed by inference, per rule:")
        for rule in reports["inference"]["ledger"]["rules"]:
            print(f"   {rule['id']:30} {mb(rule['bytes'])}  {rule['files']:6d} files")
        if args.official_bytes:
            off = args.official_bytes
            print(
                f"\nofficial runtime image: {mb(off)} uncompressed; inference is "
                f"{totals['inference']['uncompressed'] / off:.1%} of it (target <= 50 %)"
            )
        else:
            print("\nofficial runtime image size: pass --official-bytes (not reachable from here)")


if __name__ == "__main__":
    main()
