"""Benchmark the main job on examples/hello-torch, all figures from one run.

Prints:
  * cold build time (empty cache) vs warm rebuild after touching one app file, and the ratio
    (target: warm <= 10 % of cold);
  * image size slim vs --no-slim, uncompressed and compressed, and the ratio
    (target: uncompressed <= 70 %);
  * time from `podman run` to the first 200 on /health, slim vs --no-slim
    (slimming must not slow start-up), median of N runs.

Run:  .venv/bin/python bench/build_example.py [--runs 5]
Needs podman (bash scripts/install.sh) and network access to PyPI and Debian's archive.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello-torch"
ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "tests" / "podman" / "containers.conf")}


def build(project: Path, out: Path, cache: Path, *extra: str) -> tuple[float, dict]:
    report = out.with_suffix(".json")
    env = {**ENV, "TORCHSLIM_CACHE": str(cache)}
    start = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torchslim.cli",
            "build",
            str(project),
            "--force",
            "--output",
            f"docker-archive:{out}",
            "--json",
            str(report),
            *extra,
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - start, json.loads(report.read_text())


def podman(*args: str) -> str:
    return subprocess.run(
        ["podman", *args], check=True, env=ENV, capture_output=True, text=True
    ).stdout


def time_to_health(image: str, port: int) -> float:
    import httpx

    name = f"bench-{port}"
    start = time.monotonic()
    podman("run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8000", image)
    try:
        while time.monotonic() - start < 120:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("no health within 120s")
    finally:
        subprocess.run(["podman", "rm", "-f", name], env=ENV, capture_output=True)


def mb(n: int) -> str:
    return f"{n / 1e6:8.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        project = tmp / "hello-torch"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("pylock.toml"))
        cache = tmp / "cache"
        cold_s, slim = build(project, tmp / "slim.tar", cache)
        main_py = project / "service" / "main.py"
        main_py.write_text(main_py.read_text() + "\n# touched by bench\n")
        warm_s, warm = build(project, tmp / "warm.tar", cache)
        rebuilt = [layer["name"] for layer in warm["layers"] if not layer["cached"]]
        _, full = build(project, tmp / "noslim.tar", cache, "--no-slim", "--tag", "noslim")

        print("== build time (examples/hello-torch, empty cache vs one app file touched)")
        print(f"cold build   {cold_s:7.1f} s")
        print(f"warm rebuild {warm_s:7.1f} s   layers rebuilt: {', '.join(rebuilt)}")
        print(f"warm / cold  {warm_s / cold_s:7.1%}   (target <= 10 %)")
        print()
        print("== image size: slim (profile inference) vs --no-slim")
        for label, key in (("uncompressed", "uncompressed"), ("compressed", "compressed")):
            a, b = slim["size"][key], full["size"][key]
            print(f"{label:13} slim {mb(a)}   no-slim {mb(b)}   ratio {a / b:6.1%}")
        print(f"(target: uncompressed <= 70 %)  removed by rules: {mb(slim['ledger']['total'])}")
        for rule in slim["ledger"]["rules"]:
            print(f"   {rule['id']:26} {mb(rule['bytes'])}  {rule['files']:6d} files")
        print()
        if shutil.which("podman") is None:
            print("podman not installed: start-up times skipped")
            return
        images = {}
        for label, tar in (("slim", tmp / "slim.tar"), ("no-slim", tmp / "noslim.tar")):
            out = podman("load", "-i", str(tar))
            images[label] = out.strip().splitlines()[-1].split("Loaded image: ")[-1].strip()
        times: dict[str, list[float]] = {"slim": [], "no-slim": []}
        for i in range(args.runs):
            for label in ("slim", "no-slim") if i % 2 == 0 else ("no-slim", "slim"):
                times[label].append(time_to_health(images[label], 18000 + i))
        print(f"== podman run -> first 200 on /health (median of {args.runs}, alternating)")
        for label, ts in times.items():
            print(
                f"{label:8} {statistics.median(ts):6.2f} s   (min {min(ts):.2f}, max {max(ts):.2f})"
            )
        ratio = statistics.median(times["slim"]) / statistics.median(times["no-slim"])
        print(f"slim / no-slim {ratio:6.1%}")


if __name__ == "__main__":
    main()
