"""A fresh CI runner building from the registry build cache, against its own cold build.

One run, on a loopback docker-registry started here:
  1. cold: examples/hello-torch (or --project DIR) built with an empty TORCHSLIM_CACHE and uv cache
     (the lock checked in, as a project in CI has it), pushed to REG/app;
  2. the writer: the same runner again with --cache-to REG/buildcache (what a
     default-branch job adds: the layers are mounted from REG/app, the entries written);
  3. the fresh runner: empty caches again, --cache-from REG/buildcache, pushing to
     REG/app-fresh. Must give the same digest.
Prints wall times with the ratio fresh/cold, the bytes the fresh runner downloaded
(against the image's compressed size) and uploaded (its push: layers mounted from the
cache repository), and what the writer sent.
Targets (issue 24): fresh <= 0.25x cold on CPU, <= 0.2x on cu130; downloaded <= 1.05x
the image; uploaded < 1 MB.

Run:  .venv/bin/python bench/registry_cache.py [--torch 2.14.1 --variant cu130]
      .venv/bin/python bench/registry_cache.py --project tests/projects/flask-flat
      .venv/bin/python bench/registry_cache.py --bytecode imported  (or --profile used,
        --compression estargz: builds that learn from their proof; the census travels too)
Needs /usr/bin/docker-registry; the wheels come from PyPI and the pip configuration.
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
sys.path.insert(0, str(REPO / "tests"))

from support.registry import start_registry  # noqa: E402

ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "tests" / "podman" / "containers.conf")}


def build(project: Path, caches: Path, *args: str) -> tuple[float, dict]:
    report = caches / "report.json"
    env = {**ENV, "TORCHSLIM_CACHE": str(caches / "ts"), "UV_CACHE_DIR": str(caches / "uv")}
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "torchslim.cli", "build", str(project), "--tls-verify", "false",
         "--json", str(report), *args],
        check=True, stdout=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    return time.monotonic() - start, json.loads(report.read_text())


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", type=Path, default=EXAMPLE, help="a project with torchslim.toml")
    ap.add_argument("--torch", help="the project's torch, e.g. 2.14.1 (written to its config)")
    ap.add_argument("--variant", help="cpu or cuXYZ, e.g. cu130 (written to its config)")
    ap.add_argument("--bytecode", help="e.g. imported (written to its config)")
    ap.add_argument("--profile", help="e.g. used (passed to every build)")
    ap.add_argument("--compression", help="e.g. estargz (passed to every build)")
    opts = ap.parse_args()
    extra: list[str] = []
    if opts.profile:
        extra += ["--profile", opts.profile]
    if opts.compression:
        extra += ["--compression", opts.compression]
    with tempfile.TemporaryDirectory(prefix="bench-cache-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        reg = start_registry(work / "registry")
        try:
            project = work / "project"
            shutil.copytree(opts.project, project, ignore=shutil.ignore_patterns("__pycache__"))
            host = reg.host
            runner = work / "runner-1"
            if opts.torch or opts.variant:  # the project's own target: its lock is its own
                cfg = project / "torchslim.toml"
                text = cfg.read_text()
                if opts.torch:
                    text = text.replace('torch = "2.13.0"', f'torch = "{opts.torch}"')
                if opts.variant:
                    text = text.replace('variant = "cpu"', f'variant = "{opts.variant}"')
                cfg.write_text(text)
            if opts.bytecode:
                cfg = project / "torchslim.toml"
                cfg.write_text(cfg.read_text() + f'bytecode = "{opts.bytecode}"\n')
            # The lock a project in CI has checked in: made first, outside the timing.
            (project / "pylock.toml").unlink(missing_ok=True)
            lock_env = {**ENV, "TORCHSLIM_CACHE": str(work / "lock-cache")}
            subprocess.run(
                [sys.executable, "-m", "torchslim.cli", "deps", str(project)],
                check=True, stdout=subprocess.DEVNULL, env=lock_env,
            )  # fmt: skip
            shutil.rmtree(work / "lock-cache")
            cold_s, cold = build(project, runner, *extra, "-o", f"docker://{host}/app")
            write_s, wrote = build(
                project, runner, *extra, "-o", f"docker://{host}/app",
                "--cache-to", f"{host}/buildcache",
            )  # fmt: skip
            fresh_s, fresh = build(
                project, work / "runner-2", *extra, "-o", f"docker://{host}/app-fresh",
                "--cache-from", f"{host}/buildcache",
            )  # fmt: skip
        finally:
            reg.stop()
    image = sum(layer["compressed"] for layer in cold["layers"])
    got = fresh["cache_from"]
    pushed = fresh["push"]
    exported = wrote["cache_to"]
    label = f"torch {opts.torch or 'from config'}, variant {opts.variant or 'from config'}"
    for name in ("bytecode", "profile", "compression"):
        if getattr(opts, name):
            label += f", {name} {getattr(opts, name)}"
    print(f"Registry build cache, {opts.project.resolve().name} ({label})")
    print(f"  image: {mb(image)} compressed, {len(cold['layers'])} layers")
    print(f"  cold build (empty caches, push):          {cold_s:7.1f} s")
    print(f"  writer: warm build + --cache-to:          {write_s:7.1f} s  "
          f"({exported['entries_written']} entries, uploaded {mb(exported['bytes_uploaded'])}, "
          f"mounted or present {mb(exported['bytes_mounted_or_present'])})")  # fmt: skip
    print(f"  fresh runner, --cache-from (empty caches): {fresh_s:6.1f} s  "
          f"= {fresh_s / cold_s:.2f}x cold")  # fmt: skip
    print(f"    layers from the cache: {got['hits']}/{got['hits'] + got['misses']}, "
          f"proof record reused: {'yes' if got['proof_records'] else 'no'}, "
          f"learned lists reused: {got.get('learned_records', 0)}")  # fmt: skip
    print(f"    downloaded: {mb(got['bytes_downloaded'])} = "
          f"{got['bytes_downloaded'] / image:.3f}x the image; "
          f"uploaded (its push): {mb(pushed['bytes_uploaded'])}, "
          f"mounted {len(pushed['mounted'])} blobs")  # fmt: skip
    same = fresh["digest"] == cold["digest"]
    print(f"    same digest as the cold build: {'yes' if same else 'NO'} ({fresh['digest']})")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
