"""What `--compression-level` buys a fleet: bytes pushed and pulled, against build CPU.

The benchmark service of bench/fleet.py (examples/hello-torch with numpy, uvicorn 0.32.0)
built as zstd:chunked at several levels, on the default profile and on profile `used`,
and the seed recipe (bench/seed/Dockerfile, pushed as gzip) built once in the same run.
For each image:
  - size as pushed (layers + config), with the ratio to the seed recipe's;
  - seconds spent writing layers on a cold layer cache (wheels and Debian packages
    already cached, so the figure is the compressor's cost), and the whole build;
  - a rebuild after one app file changed: the cached layers keep their bytes, so a
    high level is paid once per torch/deps layer, not per release;
  - fresh-node pull and pull + run + first 2xx on /health, stock podman, empty store,
    loopback registry, unshaped and shaped (100 MB/s, 10 ms per request), medians of
    --runs alternating runs, with the bytes the registry served.

Run:  .venv/bin/python bench/compression_level.py [--levels 3,9,19] [--runs 2]
      .venv/bin/python bench/compression_level.py --files F [F ...]  (no image: what each
      level makes of a 128 MiB sample of each file, in 4 MiB frames on 2 threads, e.g.
      a CUDA library taken out of its wheel)
Needs podman, docker-registry and the pip configuration's torch wheel folder (/opt/wheels).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import zstandard
from _shaper import ShapingProxy
from fleet import (
    Figures,
    make_project,
    median,
    pull_and_answer,
    pushed_bytes,
    remove_seed_images,
    seed_base,
    seed_build,
    sh,
    store,
    torchslim,
)
from support.registry import Registry, start_registry

PROFILES = {"default": (), "used": ("--profile", "used")}


def layer_seconds(report: dict[str, object]) -> float:
    steps = report["steps"]
    assert isinstance(steps, list)
    return float(sum(s["seconds"] for s in steps if str(s["step"]).startswith("Writing layer")))


def run(tmp: Path, reg: Registry, shaper: ShapingProxy, levels: list[int], runs: int) -> str:
    host = reg.host
    project = make_project(tmp / "svc", numpy=True, uvicorn="0.32.0")
    warm = tmp / "warm-cache"  # wheels, Debian packages and the lock: fetched once, untimed
    torchslim(project, warm, "--no-prove", "--output", f"oci:{tmp / 'lock'}")

    base = seed_base(tmp)
    seed_build(project, base, "localhost/seed:v1", "--no-cache")
    sh("podman", "push", "--tls-verify=false", "--compression-format", "gzip",
       "localhost/seed:v1", f"docker://{host}/seed:v1")  # fmt: skip
    seed_pushed = float(pushed_bytes(host, "seed", "v1"))

    fig = Figures()
    images: dict[str, str] = {"seed": "seed:v1"}
    main_py = project / "service" / "main.py"
    original = main_py.read_text()
    for profile, args in PROFILES.items():
        for level in levels:
            name = f"{profile}, level {level}"
            repo = f"ts-{profile}-{level}"
            cache = tmp / f"cache-{profile}-{level}"
            shutil.copytree(warm, cache, ignore=shutil.ignore_patterns("layers", "trees"))
            level_args = ("--compression", "zstd:chunked", "--compression-level", str(level))
            seconds, report = torchslim(project, cache, *level_args, *args,
                                        "--output", f"docker://{host}/{repo}:v1")  # fmt: skip
            main_py.write_text(original + "\n# release 2\n")
            again, _ = torchslim(project, cache, *level_args, *args,
                                 "--output", f"docker://{host}/{repo}:v2")  # fmt: skip
            main_py.write_text(original)
            shutil.rmtree(cache)
            fig.add(f"size as pushed ({name})", seed_pushed,
                    float(pushed_bytes(host, repo, "v1")), "MB")  # fmt: skip
            fig.note(f"writing layers, cold layer cache ({name})", "",
                     f"{layer_seconds(report):.1f} s")  # fmt: skip
            fig.note(f"build, cold layer cache ({name})", "", f"{seconds:.1f} s")
            fig.note(f"build after an app change ({name})", "", f"{again:.1f} s")
            images[name] = f"{repo}:v1"

    links = {"unshaped": host, "shaped": shaper.host}
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    n = 0
    for _ in range(runs):
        for link, via in links.items():
            for name, ref in images.items():
                n += 1
                with store(tmp / f"store-{n}", partial=False) as env:
                    got = pull_and_answer(env, reg, f"{via}/{ref}")
                results.setdefault((name, link), []).append((got.pull, got.answer, got.bytes))
    for link in links:
        seed = results[("seed", link)]
        for name in images:
            if name == "seed":
                continue
            ts = results[(name, link)]
            for i, what in enumerate(("pull", "pull + run + first 2xx", "bytes served")):
                unit = "MB" if i == 2 else "s"
                fig.add(f"{what}, {link}, stock podman ({name})",
                        median([r[i] for r in seed]), median([r[i] for r in ts]), unit)  # fmt: skip
    remove_seed_images(base)
    return fig.table()


def frame_size(level: int, block: bytes) -> int:
    return len(zstandard.ZstdCompressor(level=level).compress(block))


def sample(files: list[str], levels: list[int]) -> str:
    """Each level on a 128 MiB sample of each file (from 64 MiB in, past the headers)."""
    lines = ["| file | level | of the sample | of the lowest level | MB/s (2 threads) |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for name in files:
        with open(name, "rb") as f:
            f.seek(64 << 20)
            data = f.read(128 << 20)
        blocks = [data[i : i + (4 << 20)] for i in range(0, len(data), 4 << 20)]
        lowest = 0
        for level in levels:
            start = time.monotonic()
            with ThreadPoolExecutor(2) as pool:  # a compressor is not shared between threads
                size = sum(pool.map(partial(frame_size, level), blocks))
            rate = len(data) / 1e6 / (time.monotonic() - start)
            lowest = lowest or size
            lines.append(f"| {Path(name).name} | {level} | {size / len(data):.3f} | "
                         f"{size / lowest:.3f} | {rate:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--levels", default="3,9,19", help="zstd levels, comma-separated")
    ap.add_argument("--runs", type=int, default=2, help="pull runs per image and link")
    ap.add_argument("--files", nargs="+", help="measure samples of these files instead")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    if args.files:
        print(sample(args.files, levels))
        return
    with tempfile.TemporaryDirectory(prefix="levels-") as tmp_s:
        tmp = Path(tmp_s)
        reg = start_registry(tmp / "registry", access_log=True)
        shaper = ShapingProxy(reg.host, rate=100e6, delay=0.010)
        try:
            print(run(tmp, reg, shaper, levels, args.runs))
        finally:
            shaper.close()
            reg.stop()


if __name__ == "__main__":
    main()
