"""zstd:chunked on a real loopback registry, read by this machine's podman (4.3,
containers/storage 1.43): with partial pulls on it fetches file by file, and an app-only
release moves the app layer, the config and the manifest; with partial pulls off the
same image pulls as plain zstd. Each image is started and answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.registry import Registry, log_mark, served, start_registry

from torchslim.oci.chunked import TOC_CHECKSUM

from .conftest import PODMAN_CONF, copy_example, free_port, podman, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.network]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"), access_log=True)
    try:
        yield reg
    finally:
        reg.stop()


def build(project: Path, ref: str) -> dict[str, object]:
    out = project.parent / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torchslim.cli",
            "build",
            str(project),
            "--compression",
            "zstd:chunked",
            "--tls-verify",
            "false",
            "--output",
            ref,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, object] = json.loads(out.read_text())
    return report


def manifest(host: str, tag: str) -> dict[str, Any]:
    got: dict[str, Any] = httpx.get(
        f"http://{host}/v2/team/chunked/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).json()
    return got


def partial_podman(root: Path) -> dict[str, str]:
    """podman's environment with its own store and partial pulls switched on."""
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "graph"}"\n'
        f'runroot = "{root / "run"}"\n'
        '[storage.options]\npull_options = {enable_partial_images = "true"}\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(PODMAN_CONF), "CONTAINERS_STORAGE_CONF": str(conf)}


def run_podman(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def answers(
    env: dict[str, str],
    image: str,
    *,
    port: int = 8000,
    health: str = "/health",
    expected: object = None,
) -> None:
    """Run ``image`` read-only (only /tmp writable); its health path answers, and
    ``/predict [[1, 2, 3, 4]]`` gives ``expected`` (the example's answer by default)."""
    host_port = free_port()
    cid = run_podman(
        env, "run", "-d", "--read-only", "--tmpfs", "/tmp", "-p",
        f"127.0.0.1:{host_port}:{port}", image,
    )  # fmt: skip
    try:
        try:
            wait_healthy(f"http://127.0.0.1:{host_port}{health}")
        except AssertionError as exc:  # say why: the container's own log
            logs = subprocess.run(
                ["podman", "logs", cid.strip()], env=env, capture_output=True, text=True
            )
            raise AssertionError(f"{exc}; container log:\n{logs.stdout}{logs.stderr}") from None
        r = httpx.post(f"http://127.0.0.1:{host_port}/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.json() == (expected or {"outputs": [[0.5, 1.0]]})
    finally:
        subprocess.run(["podman", "rm", "-f", cid.strip()], env=env, capture_output=True)


def test_zstd_chunked_pulls_by_file_and_an_app_release_moves_only_the_app(
    ts_cache: Path, registry: Registry, tmp_path: Path
) -> None:
    host = registry.host
    project = copy_example(tmp_path / "svc")
    # An app of more files than a layer may hold (layerparts.MAX_ENTRIES): two parts.
    assets = project / "service" / "assets"
    assets.mkdir()
    for i in range(8200):
        (assets / f"a{i:05}.txt").write_text(f"{i}\n")
    v1 = build(project, f"docker://{host}/team/chunked:v1")
    names = [lay["name"] for lay in v1["layers"]]  # type: ignore[attr-defined]
    assert names == ["base", "torch", "deps", "app", "app-2", "model"], names
    layers = manifest(host, "v1")["layers"]
    assert all(TOC_CHECKSUM in (lay.get("annotations") or {}) for lay in layers), layers

    partial = partial_podman(tmp_path / "partial")
    try:
        mark = log_mark(registry)
        run_podman(partial, "pull", "--tls-verify=false", f"{host}/team/chunked:v1")
        first = served(registry, mark)
        # The TOC, then the files, by HTTP range requests: no whole-blob GET of a layer.
        assert first.ranged > len(layers), first.requests
        whole = [p for _, p, status, _ in first.requests if status == 200]
        assert not any(lay["digest"] in p for lay in layers for p in whole), whole
        answers(partial, f"{host}/team/chunked:v1")

        # An app-only release: the node fetches from the app parts the files that changed
        # (main.py is in one part, its .pyc in the other), the config and the manifest.
        main = project / "service" / "main.py"
        main.write_text(main.read_text() + "\n# release 2\n")
        v2 = build(project, f"docker://{host}/team/chunked:v2")
        before = {lay["name"]: lay["digest"] for lay in v1["layers"]}  # type: ignore[attr-defined]
        after = {lay["name"]: lay["digest"] for lay in v2["layers"]}  # type: ignore[attr-defined]
        changed = sorted(n for n in after if after[n] != before.get(n))
        changed_digests = {after[n] for n in changed}
        assert changed == ["app", "app-2"], changed
        config = manifest(host, "v2")["config"]["digest"]
        mark = log_mark(registry)
        run_podman(partial, "pull", "--tls-verify=false", f"{host}/team/chunked:v2")
        update = served(registry, mark)
        assert update.blobs() <= {after["app"], after["app-2"], config}, update.blobs()
        app_bytes = sum(
            lay["size"]
            for lay in manifest(host, "v2")["layers"]
            if lay["digest"] in changed_digests
        )
        print(f"update: {update.bytes} bytes in {len(update.requests)} requests; app {app_bytes}")
        assert update.bytes < 1_000_000, update.requests
        answers(partial, f"{host}/team/chunked:v2")
    finally:
        subprocess.run(["podman", "rmi", "-a", "-f"], env=partial, capture_output=True)

    # With partial pulls off (the session's plain store) it is a plain zstd image.
    podman("pull", "--tls-verify=false", f"{host}/team/chunked:v1", timeout=600)
    try:
        answers({**os.environ, "CONTAINERS_CONF": str(PODMAN_CONF)}, f"{host}/team/chunked:v1")
    finally:
        podman("rmi", "-f", f"{host}/team/chunked:v1", check=False)


def test_a_higher_level_pushes_fewer_bytes_and_still_pulls_both_ways(
    ts_cache: Path, registry: Registry, tmp_path: Path
) -> None:
    """Level 19 (the config's ``compression-level``; the command line's default level
    replaces it for the first build): the OS layer is smaller than at the default level,
    and podman pulls it file by file (partial pulls on) and as plain zstd, and runs it."""
    host = registry.host
    project = copy_example(tmp_path / "os")
    with (project / "torchslim.toml").open("a") as f:
        f.write('compression = "zstd:chunked"\ncompression-level = 19\n')
    sizes: dict[str, int] = {}
    for level, args in (("3", ["--compression-level", "3"]), ("19", [])):
        ref = f"docker://{host}/team/chunked:os-{level}"
        proc = subprocess.run(
            [sys.executable, "-m", "torchslim.cli", "build", str(project), "--target", "os",
             *args, "--tls-verify", "false", "--output", ref],
            capture_output=True, text=True, check=False, timeout=900,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        (layer,) = manifest(host, f"os-{level}")["layers"]
        assert TOC_CHECKSUM in (layer.get("annotations") or {}), layer
        sizes[level] = int(layer["size"])
    assert sizes["19"] < sizes["3"] * 0.92, sizes

    image = f"{host}/team/chunked:os-19"
    check = ["run", "--rm", "--read-only", image, "python3", "-c", "import ssl, json; print('ok')"]
    partial = partial_podman(tmp_path / "partial")
    try:
        mark = log_mark(registry)
        run_podman(partial, "pull", "--tls-verify=false", image)
        assert served(registry, mark).ranged > 0  # file by file, at level 19 too
        assert run_podman(partial, *check).strip() == "ok"
    finally:
        subprocess.run(["podman", "rmi", "-a", "-f"], env=partial, capture_output=True)
    plain = {**os.environ, "CONTAINERS_CONF": str(PODMAN_CONF)}
    run_podman(plain, "pull", "--tls-verify=false", image)
    try:
        assert run_podman(plain, *check).strip() == "ok"
    finally:
        subprocess.run(["podman", "rmi", "-f", image], env=plain, capture_output=True)
