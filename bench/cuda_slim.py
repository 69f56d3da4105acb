"""Bytes per CUDA layer group before and after slimming the torch CUDA stack.

Unpacks torch + its nvidia-* wheels + Triton (default: torch 2.14.1 and the CUDA 13 wheels
from the local indexes /opt/pypi*/files) into a site-packages, groups every file by the
distribution that owns it (RECORD) and the layer ``torchslim.build.layerplan`` gives that
distribution, slims a hard-linked copy with a profile, runs the ELF closure check, and
prints a table:

    python bench/cuda_slim.py                       # inference, wheels from /opt/pypi*/files
    python bench/cuda_slim.py --profile compile --keep-dir /tmp/cudastack
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from torchslim.build.layerplan import plan_python_layers
from torchslim.slim.apply import slim_tree
from torchslim.slim.closure import check_closure
from torchslim.slim.ledger import Ledger

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.slim import CUDA_WHEEL_GLOBS  # noqa: E402 - the wheel list the CUDA tests use

SITE = "/usr/local/lib/python3.11/site-packages"
SYS = "/usr/lib/x86_64-linux-gnu"
DEFAULT_GLOBS = CUDA_WHEEL_GLOBS


def find_wheels(globs: list[str]) -> list[Path]:
    dirs = sorted(Path("/opt").glob("pypi*/files"))
    return sorted({w for d in dirs for g in globs for w in d.glob(g)})


def unpack(wheels: list[Path], site: Path) -> None:
    site.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                target = site / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    target.chmod(mode)


def owners(site: Path) -> dict[str, str]:
    """site-relative path -> distribution name, from every RECORD."""
    out: dict[str, str] = {}
    for record in sorted(site.glob("*.dist-info/RECORD")):
        dist = record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        with record.open(newline="") as f:
            for row in csv.reader(f):
                if row:
                    out[row[0]] = dist
    return out


def group_bytes(site: Path, owner: dict[str, str], layer_of: dict[str, str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for dirpath, _, files in os.walk(site):
        for name in files:
            p = Path(dirpath, name)
            rel = p.relative_to(site).as_posix()
            dist = owner.get(rel)
            layer = layer_of.get(dist, "deps") if dist else "(unowned)"
            sizes[layer] = sizes.get(layer, 0) + p.lstat().st_size
    return sizes


def clone(src: Path, dst: Path) -> None:
    """Hard-link copy; RECORD files are real copies (slimming rewrites them in place)."""
    shutil.copytree(src, dst, copy_function=os.link)
    for record in dst.glob("*.dist-info/RECORD"):
        data = record.read_bytes()
        record.unlink()
        record.write_bytes(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="inference")
    ap.add_argument("--glob", action="append", help="wheel file globs in /opt/pypi*/files")
    ap.add_argument("--keep-dir", type=Path, help="unpack here and reuse it next time")
    args = ap.parse_args()

    work = args.keep_dir or Path(tempfile.mkdtemp(prefix="cuda-slim-"))
    pristine = work / "site"
    if not pristine.is_dir():
        wheels = find_wheels(args.glob or list(DEFAULT_GLOBS))
        if not wheels:
            print("no wheels found in /opt/pypi*/files", file=sys.stderr)
            return 2
        t0 = time.monotonic()
        unpack(wheels, pristine)
        print(f"unpacked {len(wheels)} wheels in {time.monotonic() - t0:.0f}s into {pristine}")

    owner = owners(pristine)
    dists = sorted(set(owner.values()))
    layer_of = {d: layer for layer, members in plan_python_layers(dists) for d in members}
    for d in dists:  # plan names are normalized; map the dist-info spelling too
        layer_of.setdefault(d, layer_of.get(d.replace("_", "-").lower(), "deps"))
    before = group_bytes(pristine, owner, layer_of)

    root = work / f"slim-{args.profile}"
    if root.exists():
        shutil.rmtree(root)
    clone(pristine, root / SITE.lstrip("/"))
    ledger = Ledger()
    t0 = time.monotonic()
    removed = slim_tree(root, SITE, profile=args.profile, ledger=ledger)
    slim_s = time.monotonic() - t0
    after = group_bytes(root / SITE.lstrip("/"), owner, layer_of)
    missing = check_closure([(root, "/"), (Path(SYS), SYS)], check_prefixes=[SITE], removed=removed)

    mb = 1_000_000
    print(f"\nprofile {args.profile}: slimmed in {slim_s:.0f}s\n")
    print(f"{'layer group':<16}{'before MB':>11}{'after MB':>10}{'saved MB':>10}")
    order = [layer for layer, _ in plan_python_layers(dists)] + ["(unowned)"]
    for layer in order:
        b, a = before.get(layer, 0), after.get(layer, 0)
        if b:
            print(f"{layer:<16}{b / mb:>11.0f}{a / mb:>10.0f}{(b - a) / mb:>10.0f}")
    tb, ta = sum(before.values()), sum(after.values())
    print(f"{'total':<16}{tb / mb:>11.0f}{ta / mb:>10.0f}{(tb - ta) / mb:>10.0f}\n")
    print(f"{'rule':<24}{'files':>7}{'MB':>8}")
    for rule, _, files, nbytes in ledger.by_rule():
        print(f"{rule:<24}{files:>7}{nbytes / mb:>8.0f}")
    required = [m for m in missing if not m.optional]
    print(f"\nELF closure: {len(required)} missing, {len(missing) - len(required)} optional")
    for m in missing:
        print(("  optional: " if m.optional else "  MISSING: ") + m.message())
    return 1 if required else 0


if __name__ == "__main__":
    raise SystemExit(main())
