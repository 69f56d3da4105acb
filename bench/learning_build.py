"""Cold builds that learn from their proof, against the default cold build of the same project.

`bytecode = "imported"`, profile `used` and `--compression estargz` make an image that
depends on what the served proof saw the service load or open: a first build serves a
first try, learns, assembles again and serves that image. This prints the cold build
time of each (empty TORCHSLIM_CACHE; uv's cache and the lock as they are, the same for
every side), as medians of --runs alternating runs, with the ratio to the default build,
and whether it served twice (a census step: the first try taught it something).

Run:  .venv/bin/python bench/learning_build.py [--runs 3] [--project DIR]
Needs podman (the proof), the pip configuration's torch wheel folder.
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
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "default": ("", []),
    'bytecode = "imported"': ('bytecode = "imported"\n', []),
    "profile used": ("", ["--profile", "used"]),
    "--compression estargz": ("", ["--compression", "estargz"]),
}


def build(project: Path, work: Path, args: list[str]) -> tuple[float, dict]:
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    report = work / "report.json"
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "torchslim.cli", "build", str(project), "--json", str(report),
         *args],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**ENV, "TORCHSLIM_CACHE": str(cache)},
    )  # fmt: skip
    seconds = time.monotonic() - start
    shutil.rmtree(cache, ignore_errors=True)
    return seconds, json.loads(report.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--project", type=Path, default=EXAMPLE)
    opts = ap.parse_args()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    twice: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench-learn-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        projects: dict[str, Path] = {}
        for i, (name, (config, _)) in enumerate(VARIANTS.items()):
            project = work / f"p{i}" / opts.project.name
            shutil.copytree(opts.project, project, ignore=shutil.ignore_patterns("__pycache__"))
            cfg = project / "torchslim.toml"
            cfg.write_text(cfg.read_text() + config)
            projects[name] = project
        for _ in range(opts.runs):
            for name, (_, args) in VARIANTS.items():
                seconds, report = build(projects[name], work, args)
                times[name].append(seconds)
                twice[name] = any(s["step"].startswith("Census:") for s in report["steps"])
    base = statistics.median(times["default"])
    print(f"Cold builds of {opts.project.resolve().name} (medians of {opts.runs}, alternating)")
    for name, values in times.items():
        med = statistics.median(values)
        each = " / ".join(f"{v:.1f}" for v in values)
        print(f"  {name:24} {med:6.1f} s  = {med / base:.2f}x default  "
              f"(served twice: {'yes' if twice[name] else 'no'}; runs {each} s)")  # fmt: skip


if __name__ == "__main__":
    main()
