"""Issue 3 acceptance on a real loopback registry: a shared base, a service FROM it,
re-pushes that upload nothing, skopeo and podman reading the result, reproducible pushes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import copy_example, free_port, podman, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.network]
TAG = "v1.2-pytorch2.13-cpu"


def torchslim(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run the CLI with --json; return the report."""
    out = Path(os.environ["TORCHSLIM_CACHE"]) / f"report-{os.getpid()}-{len(args)}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "torchslim.cli", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(out.read_text())
    out.unlink()
    return data


def set_base(project: Path, base: str) -> None:
    cfg = project / "torchslim.toml"
    cfg.write_text(cfg.read_text().replace('base = "debian"', f'base = "{base}"'))


def test_shared_base_service_push_and_run(
    ts_cache: Path, registry_host: str, tmp_path: Path
) -> None:
    host = registry_host
    project = copy_example(tmp_path / "svc")
    # 1. The shared base: OS + torch + deps, pushed once.
    base = torchslim(
        "build",
        str(project),
        "--target",
        "base",
        "--tls-verify",
        "false",
        "--output",
        f"docker://{host}/team/torch-base",
    )
    base_push = base["push"]
    assert isinstance(base_push, dict) and base_push["bytes_uploaded"] > 100_000_000
    base_ref = f"docker://{host}/team/torch-base:{TAG}-base"

    # 2. A service FROM that base pushes only its own layers (app, model) and config.
    set_base(project, base_ref)
    svc = torchslim(
        "build", str(project), "--tls-verify", "false", "--output", f"docker://{host}/team/hello"
    )
    names = [layer["name"] for layer in svc["layers"]]  # type: ignore[index]
    assert names[1:] == ["app", "model"], names
    push = svc["push"]
    assert isinstance(push, dict)
    assert len(push["uploaded"]) == 3  # app layer, model layer, config
    assert push["bytes_uploaded"] < 1_000_000
    assert push["mounted"], "base layers should be mounted from team/torch-base"

    # 3. The same push again uploads nothing.
    again = torchslim(
        "build", str(project), "--tls-verify", "false", "--output", f"docker://{host}/team/hello"
    )
    assert again["push"]["uploaded"] == []  # type: ignore[index]
    assert again["digest"] == svc["digest"]

    # 4. skopeo reads it back into an OCI layout.
    if shutil.which("skopeo"):
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--src-tls-verify=false",
                f"docker://{host}/team/hello:{TAG}",
                f"oci:{tmp_path / 'back'}:{TAG}",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        index = json.loads((tmp_path / "back" / "index.json").read_text())
        assert index["manifests"][0]["digest"] == svc["digest"]

    # 5. podman pulls it and it serves.
    image = f"{host}/team/hello:{TAG}"
    podman("pull", "--tls-verify=false", image, timeout=600)
    port = free_port()
    name = f"reg-e2e-{port}"
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", image)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.json() == {"outputs": [[0.5, 1.0]]}
    finally:
        podman("rm", "-f", name, check=False)
        podman("rmi", "-f", image, check=False)


def test_same_lock_and_epoch_push_same_digest(
    ts_cache: Path, registry_host: str, tmp_path: Path
) -> None:
    first = copy_example(tmp_path / "one")
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    a = torchslim(
        "build",
        str(first),
        "--tls-verify",
        "false",
        "--output",
        f"docker://{registry_host}/repro/a",
        env=env,
    )
    second = tmp_path / "elsewhere" / "two"
    shutil.copytree(first, second)  # the same lock (pylock.toml) travels with the project
    b = torchslim(
        "build",
        str(second),
        "--tls-verify",
        "false",
        "--output",
        f"docker://{registry_host}/repro/b",
        env=env,
    )
    assert a["digest"] == b["digest"]
    assert a["push"]["manifest_digest"] == b["push"]["manifest_digest"]  # type: ignore[index]


def test_a_fresh_runner_builds_from_the_registry_cache_to_the_same_digest(
    ts_cache: Path, registry_host: str, tmp_path: Path
) -> None:
    """Issue 24: --cache-to on one runner, --cache-from on a fresh one (empty caches)."""
    from support.proxy import DroppingProxy

    host = registry_host
    project = copy_example(tmp_path / "svc")
    # 1. A runner with a warm cache pushes the image, then the cache: its layers are mounted
    # from the image's repository, so only the entries' configs (reports, ~1 MB) go up.
    warm = torchslim(
        "build", str(project), "--tls-verify", "false",
        "--output", f"docker://{host}/team/cached", "--cache-to", f"{host}/team/buildcache",
    )  # fmt: skip
    exported = warm["cache_to"]
    assert isinstance(exported, dict)
    layers = warm["layers"]
    assert isinstance(layers, list)
    assert exported["entries_written"] == len(layers) + 1, exported  # and the proof's record
    compressed = sum(int(layer["compressed"]) for layer in layers)
    assert exported["bytes_mounted_or_present"] >= compressed, exported
    assert exported["bytes_uploaded"] < 3_000_000, exported

    # 2. A fresh runner (no torchslim or uv cache), the lock checked in with the project,
    # an unreachable cache first: one warning, then every layer from the good one.
    fresh = tmp_path / "runner" / "svc"
    shutil.copytree(project, fresh)
    env = {"TORCHSLIM_CACHE": str(tmp_path / "fresh-cache"), "UV_CACHE_DIR": str(tmp_path / "uv")}
    got = torchslim(
        "build", str(fresh), "--tls-verify", "false", "--output", f"docker://{host}/team/fresh",
        "--cache-from", "127.0.0.1:9/gone", "--cache-from", f"{host}/team/buildcache",
        env=env,
    )  # fmt: skip
    assert got["digest"] == warm["digest"]
    fetched = got["cache_from"]
    assert isinstance(fetched, dict)
    assert (fetched["hits"], fetched["misses"]) == (len(layers), 0), fetched
    assert fetched["proof_records"] == 1  # the same image, proven by the runner that wrote it
    assert got["proof"]["status"] == "proven"  # type: ignore[index]
    assert fetched["bytes_downloaded"] <= 1.05 * compressed
    assert len(fetched["warnings"]) == 1 and "127.0.0.1:9/gone" in fetched["warnings"][0]
    assert all(layer["cached"] for layer in got["layers"])  # type: ignore[union-attr]
    # Its push mounts every layer from the cache repository: only the config goes up.
    pushed = got["push"]
    assert isinstance(pushed, dict)
    assert len(pushed["mounted"]) == len(layers) and pushed["bytes_uploaded"] < 100_000, pushed
    # What the fresh runner pushed (its proof was the writer's record) starts and answers.
    image = f"{host}/team/fresh@{got['digest']}"
    podman("pull", "--tls-verify=false", image, timeout=600)
    port = free_port()
    name = f"cache-e2e-{port}"
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", image)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.json() == {"outputs": [[0.5, 1.0]]}
    finally:
        podman("rm", "-f", name, check=False)
        podman("rmi", "-f", image, check=False)

    # 3. The cache registry dies mid-push: the build still succeeds, saying so in one line.
    cutting = DroppingProxy(host, 64 << 10, times=1000)
    try:
        report = tmp_path / "cut.json"
        proc = subprocess.run(
            [
                sys.executable, "-m", "torchslim.cli", "build", str(fresh), "--tls-verify",
                "false", "--output", f"oci:{tmp_path / 'out2'}", "--json", str(report),
                "--cache-to", f"{cutting.host}/team/other-cache",
            ],
            capture_output=True, text=True, timeout=900, env={**os.environ, **env},
        )  # fmt: skip
    finally:
        cutting.close()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(report.read_text()).get("cache_to") is None
    lines = [ln for ln in proc.stderr.splitlines() if "--cache-to" in ln]
    assert len(lines) == 1 and "not written" in lines[0], proc.stderr


def test_a_fresh_runner_starts_from_what_the_proofs_learned(
    ts_cache: Path, registry_host: str, tmp_path: Path
) -> None:
    """bytecode = "imported": the census (which modules the service loaded) goes with the
    layers to --cache-to, so a fresh runner with --cache-from assembles the proven image
    at once: every layer a hit, nothing served again to learn the census."""
    host = registry_host
    project = copy_example(tmp_path / "svc")
    config = project / "torchslim.toml"
    # A name of its own: the census is kept per service, and test_bytecode's first build
    # of the example must not find this one in the shared cache.
    text = config.read_text().replace('name = "hello-torch"', 'name = "hello-learned"')
    config.write_text(text + 'bytecode = "imported"\n')
    cache = f"{host}/team/learned-cache"
    warm = torchslim(
        "build", str(project), "--tls-verify", "false", "--output", f"oci:{tmp_path / 'warm'}",
        "--cache-to", cache,
    )  # fmt: skip
    layers = warm["layers"]
    assert isinstance(layers, list)
    exported = warm["cache_to"]
    assert isinstance(exported, dict)
    # The image's layers (not those of a first try with every .pyc, which the census
    # replaced), the census, and the record of each proof: two when this cache did not
    # know the census yet (the first try was served too), else one.
    total = exported["entries_written"] + exported["entries_present"]
    assert total in (len(layers) + 2, len(layers) + 3), exported

    fresh = tmp_path / "runner" / "svc"
    shutil.copytree(project, fresh)
    env = {"TORCHSLIM_CACHE": str(tmp_path / "fresh-cache"), "UV_CACHE_DIR": str(tmp_path / "uv")}
    got = torchslim(
        "build", str(fresh), "--tls-verify", "false", "--output", f"oci:{tmp_path / 'fresh'}",
        "--cache-from", cache, env=env,
    )  # fmt: skip
    assert got["digest"] == warm["digest"]
    fetched = got["cache_from"]
    assert isinstance(fetched, dict)
    assert (fetched["hits"], fetched["misses"]) == (len(layers), 0), fetched
    assert fetched["learned_records"] == 1 and fetched["proof_records"] == 1, fetched
    steps = [s["step"] for s in got["steps"]]  # type: ignore[union-attr]
    assert not any(s.startswith("Census:") for s in steps), steps
