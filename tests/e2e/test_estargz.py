"""eStargz (``--compression estargz``) read by the tools a lazy-pulling fleet runs:
containerd 1.6 pulls and unpacks it as the gzip image it also is, ctr-remote (Debian's
stargz-snapshotter) parses each layer's footer and TOC and gets the digest the manifest
names, the files the served proof opened come before the prefetch landmark, and podman
pulls it (by range with partial pulls on, whole with them off) and it answers. Lazy
start itself needs stargz-snapshotter's daemon, which Debian does not package: it is
not run here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.corpus import copy_project
from support.registry import Registry, log_mark, served, start_registry

from torchslim.oci.estargz import (
    NO_PREFETCH_LANDMARK,
    PREFETCH_LANDMARK,
    TOC_DIGEST,
    UNCOMPRESSED_SIZE,
)

from .conftest import PODMAN_CONF, copy_example, free_port, podman, wait_healthy
from .test_partial_pull import answers, partial_podman, run_podman

pytestmark = [pytest.mark.e2e, pytest.mark.network]

SITE = "usr/local/lib/python3.11/dist-packages"
TOOLS = ("containerd", "ctr", "ctr-remote")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"), access_log=True)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A containerd of its own (root, state and socket in a temporary folder): its
    address. .ci/run installs Debian's containerd and stargz-snapshotter."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root and {', '.join(missing) or 'nothing else'} (CI installs them)")
    home = tmp_path_factory.mktemp("containerd")
    address = str(home / "containerd.sock")
    config = home / "config.toml"
    config.write_text(
        f'version = 2\nroot = "{home / "root"}"\nstate = "{home / "state"}"\n'
        f'[grpc]\n  address = "{address}"\n'
        '[plugins."io.containerd.grpc.v1.cri"]\n  disable_tcp_service = true\n'
    )
    log = (home / "log.txt").open("w")
    proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log)
    try:
        for _ in range(100):
            if ctr(address, "version", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("containerd did not start: " + (home / "log.txt").read_text())
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def ctr(
    address: str, *args: str, tool: str = "ctr", check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [tool, "--address", address, *args], capture_output=True, text=True, timeout=900
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def manifest(host: str, repo: str, tag: str) -> dict[str, Any]:
    got: dict[str, Any] = httpx.get(
        f"http://{host}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).json()
    return got


def build_estargz(project: Path, ref: str) -> str:
    """``torchslim build --compression estargz`` pushed to ``ref``; its output."""
    proc = subprocess.run(
        [
            sys.executable, "-m", "torchslim.cli", "build", str(project), "--compression",
            "estargz", "--tls-verify", "false", "--output", f"docker://{ref}",
        ],
        capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def toc_names(containerd: str, layer: dict[str, Any]) -> list[str]:
    """ctr-remote's own parser: the footer finds the TOC, whose digest must be the one the
    manifest names (what a lazy-pulling snapshotter checks before it trusts the TOC); the
    names of its entries, in order."""
    digest = layer["digest"]
    got = ctr(containerd, "images", "get-toc-digest", digest, tool="ctr-remote")
    assert got.stdout.strip() == layer["annotations"][TOC_DIGEST]
    dumped = ctr(containerd, "images", "get-toc-digest", "--dump-toc", digest, tool="ctr-remote")
    return [e["name"] for e in json.loads(dumped.stdout)["entries"]]


def test_estargz_is_read_by_containerd_ctr_remote_and_podman(
    ts_cache: Path, registry: Registry, containerd: str, tmp_path: Path
) -> None:
    host = registry.host
    project = copy_example(tmp_path / "svc")
    output = build_estargz(project, f"{host}/team/lazy:v1")
    # The first build had no census yet: it serves, puts what the service opened first,
    # and serves that image again.
    assert "eStargz layers put them first" in output
    layers = manifest(host, "team/lazy", "v1")["layers"]
    assert all(lay["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip" for lay in layers)

    # containerd 1.6 pulls it as the gzip image it also is: every layer unpacked, each
    # diff id checked.
    ctr(containerd, "images", "pull", "--plain-http", f"{host}/team/lazy:v1")
    tocs: dict[str, list[str]] = {}
    for lay in layers:
        assert int(lay["annotations"][UNCOMPRESSED_SIZE]) > 0
        tocs[lay["digest"]] = toc_names(containerd, lay)

    # What the served proof opened comes first: torch's libraries and modules, the app.
    names = [n for entries in tocs.values() for n in entries]
    torch_layer = next(e for e in tocs.values() if f"{SITE}/torch/lib/libtorch_cpu.so" in e)
    mark = torch_layer.index(PREFETCH_LANDMARK)
    first = torch_layer[:mark]
    assert f"{SITE}/torch/lib/libtorch_cpu.so" in first
    assert f"{SITE}/torch/__init__.py" in first
    later = torch_layer[mark:]  # never opened: after the landmark
    assert any(n.startswith(f"{SITE}/torch/") and n.endswith(".py") for n in later)
    app_layer = next(e for e in tocs.values() if "app/service/main.py" in e)
    assert app_layer.index("app/service/main.py") < app_layer.index(PREFETCH_LANDMARK)
    # Every layer says one or the other (the base, built before any census: none).
    assert all((PREFETCH_LANDMARK in e) != (NO_PREFETCH_LANDMARK in e) for e in tocs.values())
    assert names.count("stargz.index.json") == 0  # the TOC does not list itself

    # podman with partial pulls on reads the eStargz TOC and fetches by range; the image,
    # run as its non-root user, answers (a layer without a root entry would leave "/"
    # mode 0700 for it).
    partial = partial_podman(tmp_path / "partial")
    try:
        mark = log_mark(registry)
        run_podman(partial, "pull", "--tls-verify=false", f"{host}/team/lazy:v1")
        assert served(registry, mark).ranged > len(layers)
        answers(partial, f"{host}/team/lazy:v1")
    finally:
        subprocess.run(["podman", "rmi", "-a", "-f"], env=partial, capture_output=True)

    # Stock podman pulls it as plain gzip, and the image answers.
    env = {**os.environ, "CONTAINERS_CONF": str(PODMAN_CONF)}
    podman("pull", "--tls-verify=false", f"{host}/team/lazy:v1")
    port = free_port()
    cid = podman(
        "run", "-d", "--read-only", "-p", f"127.0.0.1:{port}:8000", f"{host}/team/lazy:v1"
    ).stdout.strip()
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health")
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.json() == {"outputs": [[0.5, 1.0]]}
    finally:
        subprocess.run(["podman", "rm", "-f", cid], env=env, capture_output=True)
        subprocess.run(
            ["podman", "rmi", "-f", f"{host}/team/lazy:v1"], env=env, capture_output=True
        )


def test_estargz_of_a_project_we_did_not_write_prefetches_what_its_workers_used(
    ts_cache: Path, registry: Registry, containerd: str, tmp_path: Path
) -> None:
    """tests/projects/flask-flat: a flat repository served by gunicorn, whose worker (a
    process forked from the master) imports the app; numpy 1 and Pillow 10. What the
    worker opened is prefetched too, and the image answers after a partial pull."""
    host = registry.host
    project = copy_project("flask-flat", tmp_path / "flat")
    ref = f"{host}/team/lazy-flat:v1"
    build_estargz(project, ref)
    ctr(containerd, "images", "pull", "--plain-http", ref)
    before: list[str] = []  # every layer's names before its landmark
    for lay in manifest(host, "team/lazy-flat", "v1")["layers"]:
        names = toc_names(containerd, lay)
        if PREFETCH_LANDMARK in names:
            before += names[: names.index(PREFETCH_LANDMARK)]
    # Site-packages modules are read from their (unchecked, hash-based) .pyc alone.
    for path in (
        "app/app.py",  # the app, at the root of the repository
        f"{SITE}/gunicorn/workers/__pycache__/sync.cpython-311.pyc",
        f"{SITE}/flask/__pycache__/app.cpython-311.pyc",  # imported by the worker
        f"{SITE}/numpy/core/__pycache__/__init__.cpython-311.pyc",  # numpy 1
        f"{SITE}/PIL/__pycache__/Image.cpython-311.pyc",
        f"{SITE}/torch/lib/libtorch_cpu.so",
    ):
        assert path in before, path

    partial = partial_podman(tmp_path / "partial")
    try:
        run_podman(partial, "pull", "--tls-verify=false", ref)
        answers(partial, ref, port=5000, health="/healthz", expected={"outputs": [[1.0, 1.5]]})
    finally:
        subprocess.run(["podman", "rmi", "-a", "-f"], env=partial, capture_output=True)
