"""The fleet bench (issue 23): the seed recipe against torchslim, one machine, one run.

The benchmark service is examples/hello-torch (FastAPI, torch 2.13.0 CPU) with numpy
added and uvicorn pinned to 0.32.0. Two images of it:
  - the seed recipe: bench/seed/Dockerfile (devel builder, venv copied into the runtime
    stage, non-root), built with `podman build`, pushed with podman (gzip);
  - torchslim: `torchslim build`, pushed as zstd:chunked (the fleet choice), gzip and
    estargz.
On a loopback docker-registry (access log on), directly and behind a shaping proxy
(100 MB/s shared, 10 ms before each request), it measures:
  - size uncompressed and as pushed;
  - cold build, --runs times alternating (empty caches on both sides: TORCHSLIM_CACHE
    and uv's; podman --no-cache, pip --no-cache-dir; torchslim's pylock.toml made
    beforehand, as a project keeps it checked in) and warm build (one app file touched);
  - fresh-node pull, and pull + run + first 2xx on /health, in an empty podman store,
    with stock settings and with partial pulls on; the bytes and requests the registry
    served;
  - update bytes on a node holding release 1: an app-only change, and a patch bump of
    one dependency (uvicorn 0.32.0 -> 0.32.1), as a share of the new image's pushed bytes.
Pulls alternate between the images, --runs times; figures are medians with ratios
torchslim / seed. --write-docs replaces the fleet section of docs/benchmarks.md.
--smoke (what CI runs): torchslim only, the example as it is, one unshaped run: checks
that the bench works, measures nothing worth keeping.

Run:  .venv/bin/python bench/fleet.py [--runs 3] [--write-docs]
      .venv/bin/python bench/fleet.py --only cold-build [--runs 3]  (cold builds alone)
Needs podman, docker-registry, the pip configuration's torch wheel folder (/opt/wheels).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello-torch"
SEED = REPO / "bench" / "seed" / "Dockerfile"
DOCS = REPO / "docs" / "benchmarks.md"
PODMAN_CONF = REPO / "tests" / "podman" / "containers.conf"
CA = "/etc/ssl/certs/ca-certificates.crt"
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from _shaper import ShapingProxy  # noqa: E402
from support.registry import Registry, log_mark, served, start_registry  # noqa: E402

BEGIN, END = "<!-- fleet:begin -->", "<!-- fleet:end -->"


def sh(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        args, capture_output=True, text=True, env=env or podman_env(), cwd=cwd, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} … failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def podman_env(store: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "CONTAINERS_CONF": str(PODMAN_CONF)}
    if store is not None:
        env["CONTAINERS_STORAGE_CONF"] = str(store / "storage.conf")
    return env


# Variants built from the served proof's census: (torchslim.toml lines, build options).
CENSUS_VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "imported": ('bytecode = "imported"\n', ()),
    "used": ("", ("--profile", "used")),
}
CENSUS_NAMES = {"imported": 'bytecode = "imported"', "used": 'profile = "used"'}


def make_project(dest: Path, *, numpy: bool, uvicorn: str) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("pylock*.toml", "__pycache__"))
    req = dest / "requirements.txt"
    text = req.read_text().replace("uvicorn==0.32.*", f"uvicorn=={uvicorn}")
    req.write_text(text + ("numpy==2.*\n" if numpy else ""))
    return dest


def set_uvicorn(project: Path, version: str) -> None:
    req = project / "requirements.txt"
    lines = [
        f"uvicorn=={version}" if line.startswith("uvicorn==") else line
        for line in req.read_text().splitlines()
    ]
    req.write_text("\n".join(lines) + "\n")
    (project / "pylock.toml").unlink(missing_ok=True)


def torchslim(project: Path, cache: Path, *args: str) -> tuple[float, dict[str, object]]:
    report = project.parent / "report.json"
    env = {
        **podman_env(),
        "TORCHSLIM_CACHE": str(cache),
        "UV_CACHE_DIR": str(cache / "uv"),
    }
    start = time.monotonic()
    sh(
        sys.executable,
        "-m",
        "torchslim.cli",
        "build",
        str(project),
        "--force",
        "--tls-verify",
        "false",
        "--json",
        str(report),
        *args,
        env=env,
    )
    seconds = time.monotonic() - start
    data: dict[str, object] = json.loads(report.read_text())
    return seconds, data


def seed_build(project: Path, base: str, tag: str, *extra: str) -> float:
    start = time.monotonic()
    sh(
        "podman",
        "build",
        "--format",
        "oci",
        "-f",
        str(SEED),
        "-t",
        tag,
        *extra,
        "--build-arg",
        f"BUILDER_IMAGE={base}",
        "--build-arg",
        f"RUNTIME_IMAGE={base}",
        "--build-arg",
        "PIP_FIND_LINKS=/wheels",
        "--build-arg",
        f"PIP_CERT={CA}",
        "-v",
        "/opt/wheels:/wheels:ro",
        "-v",
        f"{CA}:{CA}:ro",
        str(project),
    )
    return time.monotonic() - start


def manifest(host: str, repo: str, tag: str) -> dict[str, object]:
    accept = ", ".join(
        [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]
    )
    got: dict[str, object] = httpx.get(
        f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}
    ).json()
    return got


def pushed_bytes(host: str, repo: str, tag: str) -> int:
    m = manifest(host, repo, tag)
    layers = m["layers"]
    assert isinstance(layers, list)
    config = m["config"]
    assert isinstance(config, dict)
    return int(sum(layer["size"] for layer in layers) + config["size"])


@contextlib.contextmanager
def store(root: Path, *, partial: bool) -> Iterator[dict[str, str]]:
    """An empty podman store (stock settings, or partial pulls on), removed afterwards."""
    root.mkdir(parents=True)
    options = '[storage.options]\npull_options = {enable_partial_images = "true"}\n'
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "graph"}"\n'
        f'runroot = "{root / "run"}"\n' + (options if partial else "")
    )
    env = podman_env(root)
    try:
        yield env
    finally:
        subprocess.run(["podman", "rm", "-a", "-f"], env=env, capture_output=True, check=False)
        subprocess.run(["podman", "rmi", "-a", "-f"], env=env, capture_output=True, check=False)
        overlay = root / "graph" / "overlay"
        if os.path.ismount(overlay):
            subprocess.run(["umount", str(overlay)], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PullRun:
    pull: float
    answer: float
    bytes: int
    requests: int


# The rows each image and setting gets: (what, unit, the figure of one run).
METRICS: list[tuple[str, str, Callable[[PullRun], float]]] = [
    ("pull", "s", lambda r: r.pull),
    ("pull + run + first 2xx", "s", lambda r: r.answer),
    ("run + first 2xx (image pulled)", "s", lambda r: r.answer - r.pull),
    ("bytes served", "MB", lambda r: r.bytes),
    ("requests", "", lambda r: r.requests),
]


def pull_and_answer(env: dict[str, str], reg: Registry, image: str) -> PullRun:
    """Pull into the (empty) store, run, wait for the first 2xx on /health."""
    mark = log_mark(reg)
    start = time.monotonic()
    sh("podman", "pull", "-q", "--tls-verify=false", image, env=env)
    pulled = time.monotonic() - start
    port = free_port()
    sh("podman", "run", "-d", "--read-only", "-p", f"127.0.0.1:{port}:8000", image, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success:
                break
        time.sleep(0.05)
    else:
        raise SystemExit(f"{image} did not answer /health within 180 s")
    answered = time.monotonic() - start
    got = served(reg, mark)
    return PullRun(pulled, answered, got.bytes, len(got.requests))


def update_bytes(work: Path, reg: Registry, old: str, new: str) -> int:
    """Bytes the registry served to a node holding ``old`` (partial pulls on) for ``new``."""
    with store(work, partial=True) as env:
        sh("podman", "pull", "-q", "--tls-verify=false", old, env=env)
        mark = log_mark(reg)
        sh("podman", "pull", "-q", "--tls-verify=false", new, env=env)
        return served(reg, mark).bytes


@dataclass
class Figures:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, what: str, seed: float | None, ts: float | None, unit: str) -> None:
        def fmt(v: float | None) -> str:
            if v is None:
                return "–"
            if unit == "MB":
                return f"{v / 1e6:.1f} MB" if v >= 1e6 else f"{v / 1e3:.1f} kB"
            return f"{v:.1f} {unit}".strip()

        ratio = f"{ts / seed:.2f}" if seed and ts is not None else "–"
        self.rows.append((what, fmt(seed), fmt(ts), ratio))

    def note(self, what: str, seed: str, ts: str) -> None:
        self.rows.append((what, seed or "–", ts or "–", "–"))

    def table(self) -> str:
        head = ("", "seed recipe", "torchslim", "ratio")
        lines = [f"| {' | '.join(head)} |", "|---|---:|---:|---:|"]
        lines += [f"| {' | '.join(r)} |" for r in self.rows]
        return "\n".join(lines)


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="pull runs per image and setting")
    ap.add_argument("--smoke", action="store_true", help="torchslim only, one unshaped run")
    ap.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    ap.add_argument(
        "--only", choices=["cold-build"], help="measure only this (alternating runs, medians)"
    )
    args = ap.parse_args()
    runs = 1 if args.smoke else args.runs
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp_s:
        tmp = Path(tmp_s)
        reg = start_registry(tmp / "registry", access_log=True)
        shaper = ShapingProxy(reg.host, rate=100e6, delay=0.010)
        try:
            figures = run(tmp, reg, shaper, runs=runs, smoke=args.smoke, only=args.only)
        finally:
            shaper.close()
            reg.stop()
    text = figures.table()
    print(text)
    if args.write_docs and not args.smoke and not args.only:
        write_docs(text, runs)


def seed_base(tmp: Path) -> str:
    """The OS image both stages of the seed recipe start from (torchslim's ``--target os``
    with python3.11-venv: Docker Hub is out of reach here), loaded into podman."""
    os_project = make_project(tmp / "os", numpy=False, uvicorn="0.32.0")
    with (os_project / "torchslim.toml").open("a") as f:
        f.write('apt = ["python3.11-venv"]\n')
    torchslim(
        os_project, tmp / "os-cache", "--target", "os", "--tag", "os",
        "--output", f"docker-archive:{tmp / 'os.tar'}",
    )  # fmt: skip
    loaded = sh("podman", "load", "-i", str(tmp / "os.tar"))
    return loaded.strip().rsplit(" ", 1)[-1]


def run(
    tmp: Path, reg: Registry, shaper: ShapingProxy, *, runs: int, smoke: bool, only: str | None
) -> Figures:
    host = reg.host
    project = make_project(tmp / "svc", numpy=not smoke, uvicorn="0.32.0")
    fig = Figures()
    shared = (
        Path(os.environ["TORCHSLIM_CACHE"]) if smoke and "TORCHSLIM_CACHE" in os.environ else None
    )

    # The lock, as a project keeps it checked in (setup, not timed, its own cache).
    if not smoke:
        torchslim(project, tmp / "lock-cache", "--no-prove", "--output", f"oci:{tmp / 'lock'}")
    # Builds: cold (empty caches on both sides, alternating, --runs times), then warm (one
    # app file touched).
    base = "localhost/fleet-bench:os" if smoke else seed_base(tmp)
    ts_colds: list[float] = []
    seed_colds: list[float] = []
    for i in range(runs):
        if not smoke:
            seed_colds.append(seed_build(project, base, "localhost/seed:v1", "--no-cache"))
        ts_cache = shared or tmp / f"ts-cache-{i}"
        if i and shared is None:
            shutil.rmtree(tmp / f"ts-cache-{i - 1}")
        seconds, ts_report = torchslim(
            project, ts_cache, "--compression", "zstd:chunked", "--output", f"docker://{host}/ts:v1"
        )  # fmt: skip
        ts_colds.append(seconds)
    ts_cold = median(ts_colds)
    seed_cold = median(seed_colds) if seed_colds else None
    seed_warm = None
    if only == "cold-build":
        fig.add("cold build", seed_cold, ts_cold, "s")
        fig.note("  each run (s)", " ".join(f"{t:.1f}" for t in seed_colds),
                 " ".join(f"{t:.1f}" for t in ts_colds))  # fmt: skip
        remove_seed_images(base)
        return fig
    if not smoke:
        sh("podman", "push", "--tls-verify=false", "--compression-format", "gzip",
           "localhost/seed:v1", f"docker://{host}/seed:v1")  # fmt: skip
    torchslim(project, ts_cache, "--output", f"docker://{host}/ts-gzip:v1")
    if not smoke:  # eStargz (what the served proof opened first): podman pulls it by range
        torchslim(project, ts_cache, "--compression", "estargz",
                  "--output", f"docker://{host}/ts-estargz:v1")  # fmt: skip
    # The census variants (zstd:chunked): what each keeps, by the served proof's census.
    census: dict[str, dict[str, object]] = {}
    if not smoke:
        config = project / "torchslim.toml"
        plain = config.read_text()
        for label, (extra, args) in CENSUS_VARIANTS.items():
            config.write_text(plain + extra)
            _, census[label] = torchslim(
                project, ts_cache, "--compression", "zstd:chunked", *args,
                "--output", f"docker://{host}/ts-{label}:v1",
            )  # fmt: skip
            config.write_text(plain)
    main_py = project / "service" / "main.py"
    main_py.write_text(main_py.read_text() + "\n# release 2\n")
    ts_warm, _ = torchslim(
        project, ts_cache, "--compression", "zstd:chunked", "--output", f"docker://{host}/ts:v2"
    )
    if not smoke:
        seed_warm = seed_build(project, base, "localhost/seed:v2")
        sh("podman", "push", "--tls-verify=false", "--compression-format", "gzip",
           "localhost/seed:v2", f"docker://{host}/seed:v2")  # fmt: skip
        set_uvicorn(project, "0.32.1")
        seed_build(project, base, "localhost/seed:v3")
        sh("podman", "push", "--tls-verify=false", "--compression-format", "gzip",
           "localhost/seed:v3", f"docker://{host}/seed:v3")  # fmt: skip
        torchslim(
            project, ts_cache, "--compression", "zstd:chunked", "--output", f"docker://{host}/ts:v3"
        )

    size = ts_report["size"]
    assert isinstance(size, dict)
    seed_size = None
    if not smoke:
        inspect = json.loads(sh("podman", "image", "inspect", "localhost/seed:v1"))
        seed_size = float(inspect[0]["Size"])
    fig.add("size, uncompressed", seed_size, float(size["uncompressed"]), "MB")
    for label, report in census.items():
        csize = report["size"]
        assert isinstance(csize, dict)
        fig.add(f"size, uncompressed, {CENSUS_NAMES[label]}", seed_size,
                float(csize["uncompressed"]), "MB")  # fmt: skip
    seed_pushed = float(pushed_bytes(host, "seed", "v1")) if not smoke else None
    fig.add("size as pushed, gzip", seed_pushed, float(pushed_bytes(host, "ts-gzip", "v1")), "MB")
    if not smoke:
        fig.add("size as pushed, estargz", seed_pushed,
                float(pushed_bytes(host, "ts-estargz", "v1")), "MB")  # fmt: skip
    fig.add(
        "size as pushed, zstd:chunked", seed_pushed, float(pushed_bytes(host, "ts", "v1")), "MB"
    )
    for label in census:
        fig.add(f"size as pushed, zstd:chunked, {CENSUS_NAMES[label]}", seed_pushed,
                float(pushed_bytes(host, f"ts-{label}", "v1")), "MB")  # fmt: skip
    fig.add("cold build", seed_cold, ts_cold, "s")
    fig.add("warm build (one app file)", seed_warm, ts_warm, "s")

    # Fresh-node pulls, alternating between the images, each into an empty store.
    images = {"torchslim zstd:chunked": "ts:v1", "torchslim gzip": "ts-gzip:v1"}
    if not smoke:
        images["seed"] = "seed:v1"
        images["torchslim estargz"] = "ts-estargz:v1"
        images.update({f"torchslim {label}": f"ts-{label}:v1" for label in census})
    links = {"unshaped": reg.host} if smoke else {"unshaped": reg.host, "shaped": shaper.host}
    results: dict[tuple[str, str, bool], list[PullRun]] = {}
    n = 0
    for _ in range(runs):
        for link, via in links.items():
            for partial in (False, True):
                for name, ref in images.items():
                    n += 1
                    with store(tmp / f"store-{n}", partial=partial) as env:
                        got = pull_and_answer(env, reg, f"{via}/{ref}")
                    results.setdefault((name, link, partial), []).append(got)
    for link in links:
        for partial in (False, True):
            setting = f"{link}, {'partial pulls on' if partial else 'stock podman'}"
            seed = results.get(("seed", link, partial))
            for name in images:
                if name == "seed" or (name, link, partial) not in results:
                    continue
                ts = results[(name, link, partial)]
                label = name.removeprefix("torchslim ")
                if label in CENSUS_NAMES:
                    label = f"zstd:chunked, {CENSUS_NAMES[label]}"
                for what, unit, value in METRICS:
                    fig.add(
                        f"{what}, {setting} ({label})",
                        median([value(r) for r in seed]) if seed else None,
                        median([value(r) for r in ts]),
                        unit,
                    )

    # Updates, on a node holding release 1 (partial pulls on).
    app_ts = update_bytes(tmp / "upd-ts-2", reg, f"{host}/ts:v1", f"{host}/ts:v2")
    app_seed = None
    if not smoke:
        app_seed = update_bytes(tmp / "upd-seed-2", reg, f"{host}/seed:v1", f"{host}/seed:v2")
    fig.add("update bytes, app-only change", app_seed, app_ts, "MB")
    if not smoke:
        dep_ts = update_bytes(tmp / "upd-ts-3", reg, f"{host}/ts:v2", f"{host}/ts:v3")
        dep_seed = update_bytes(tmp / "upd-seed-3", reg, f"{host}/seed:v2", f"{host}/seed:v3")
        fig.add("update bytes, uvicorn 0.32.0 -> 0.32.1", dep_seed, dep_ts, "MB")
        ts_total = pushed_bytes(host, "ts", "v3")
        seed_total = pushed_bytes(host, "seed", "v3")
        fig.add("  as a share of the new image (%)", 100 * dep_seed / seed_total,
                100 * dep_ts / ts_total, "%")  # fmt: skip
        remove_seed_images(base)
    return fig


def remove_seed_images(base: str) -> None:
    for tag in ("v1", "v2", "v3"):
        subprocess.run(["podman", "rmi", "-f", f"localhost/seed:{tag}"], env=podman_env(),
                       capture_output=True, check=False)  # fmt: skip
    subprocess.run(["podman", "rmi", "-f", base], env=podman_env(), capture_output=True)
    # Each cold run left the one before it untagged.
    subprocess.run(["podman", "image", "prune", "-f"], env=podman_env(), capture_output=True)


def write_docs(table: str, runs: int) -> None:
    today = datetime.date.today().isoformat()
    body = (
        f"{BEGIN}\nCommand: `.venv/bin/python bench/fleet.py --runs {runs} --write-docs` "
        f"(run of {today}; medians of {runs} alternating runs; ratio = torchslim / seed).\n\n"
        f"{table}\n{END}"
    )
    text = DOCS.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text += "\n## The fleet bench: the seed recipe against torchslim\n\n" + body + "\n"
    DOCS.write_text(text)


if __name__ == "__main__":
    main()
