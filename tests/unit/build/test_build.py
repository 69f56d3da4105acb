"""The build path end to end with a fake base image and a temporary cache, no network.

As pypa/installer tests ``install()`` with a fake source and destination: the base is a
real OCI layout made here from this host's Python (a root the proof can run), the lock's
one wheel is a tiny real ``torch`` wheel built here, and uv's resolve is replaced by
that lock.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.fakebuild import SERVER, make_base_layout, make_service, plan_for, pylock
from support.wheels import make_wheel

import torchslim.build.lock as lock_step
from torchslim.build import build, publish
from torchslim.build.plan import BuildPlan
from torchslim.config import QuietSteps
from torchslim.deps.lock import Target
from torchslim.oci.layout import read_oci_layout
from torchslim.oci.transport import open_image
from torchslim.torchmeta import LABEL_PROOF, LABEL_TORCH

EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("TORCHSLIM_CACHE", str(root))
    return root


@pytest.fixture
def base_layout(tmp_path: Path) -> Path:
    return make_base_layout(tmp_path)


@pytest.fixture
def project(tmp_path: Path, base_layout: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A service on the fake base whose lock resolves to the fake torch wheel (uv's calls
    are counted: a lock whose inputs did not change is not resolved again)."""
    wheel = make_wheel(tmp_path, name="torch", version="2.13.0")
    root = make_service(tmp_path / "svc", base_layout, [wheel], monkeypatch)
    calls: list[str] = []

    def fake_uv_lock(plan: object, target: Target, steps: object) -> str:
        calls.append(target.describe())
        return pylock(wheel)

    monkeypatch.setattr(lock_step, "_uv_lock", fake_uv_lock)
    monkeypatch.setattr(lock_step, "UV_CALLS", calls, raising=False)
    return root


def _plan(project: Path, **opts: object) -> BuildPlan:
    return plan_for(project, **opts)


def test_build_returns_an_image_and_writes_nothing(project: Path, cache: Path) -> None:
    bp = _plan(project, platform="linux/amd64")
    result = build(bp.plans[0])
    image = result.image
    names = [layer.name for layer in result.layers]
    assert names == ["base (1 layers)", "user", "torch", "app", "model"]
    config = image.config()["config"]
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/app"
    assert config["Cmd"] == ["python3", "-m", "app.svc"]
    assert config["Labels"][LABEL_TORCH] == "2.13.0+cpu"
    assert config["Healthcheck"]["Test"][:2] == ["CMD", "/usr/bin/python3.11"]
    assert result.proof is not None and result.proof.ok, result.proof
    assert config["Labels"][LABEL_PROOF].startswith("proven: ")
    label = config["Labels"][LABEL_PROOF]
    # No timing in the label: it is part of the digest, which must not vary by host.
    assert label.startswith("proven: served: /health 200; "), label
    assert "entry module app.svc compiles and its imports load; cmd python3 on PATH" in label
    assert image.config()["created"] == "2023-11-14T22:13:20Z"  # the lock's upload time
    assert not any(p.name.startswith("out") for p in project.parent.iterdir())
    lock_text = (project / "pylock.toml").read_text()
    assert "[tool.torchslim.build]" in lock_text and "torch-2.13.0-py3-none-any.whl" in lock_text


def test_lock_is_read_once_and_written_once(
    project: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    writes: list[Path] = []
    real_read, real_write = lock_step.read_project_lock, lock_step.write_project_lock

    def counting_read(path: Path) -> object:
        reads.append(path)
        return real_read(path)

    def counting_write(path: Path, lock: object) -> None:
        writes.append(path)
        real_write(path, lock)  # type: ignore[arg-type]

    monkeypatch.setattr(lock_step, "read_project_lock", counting_read)
    monkeypatch.setattr(lock_step, "write_project_lock", counting_write)
    plan = _plan(project, platform="linux/amd64").plans[0]
    first = build(plan)
    assert (len(reads), len(writes)) == (1, 1)
    second = build(plan)
    assert (len(reads), len(writes)) == (2, 1)  # unchanged inputs: read, nothing to write
    assert lock_step.UV_CALLS == ["linux/amd64 cp311 glibc 2.36"]  # type: ignore[attr-defined]
    assert second.digest == first.digest
    assert all(layer.cached for layer in second.layers)


def test_one_app_edit_rebuilds_one_layer(project: Path, cache: Path) -> None:
    plan = _plan(project, platform="linux/amd64").plans[0]
    first = build(plan)
    (project / "app" / "svc" / "__init__.py").write_text("VALUE = 43\n")
    second = build(plan)
    rebuilt = [layer.name for layer in second.layers if not layer.cached]
    assert rebuilt == ["app"]
    assert second.digest != first.digest


def test_two_platforms_publish_one_index(project: Path, cache: Path, tmp_path: Path) -> None:
    # The arm64 half is x86 files under an arm64 config: it cannot run, so no proof here.
    bp = _plan(project, output=f"oci:{tmp_path / 'out'}", source_date_epoch=EPOCH, prove=False)
    results = [build(plan) for plan in bp.plans]
    written = publish(bp, results)
    assert written is not None
    assert [r.platform for r in results] == ["linux/amd64", "linux/arm64"]
    assert (project / "pylock.linux-arm64.toml").is_file()
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    # Beside the index: each platform's SBOMs and provenance (tests/unit/build/test_sbom.py).
    (top,) = [m for m in index["manifests"] if "artifactType" not in m]
    assert top["digest"] == written.digest
    assert top["annotations"]["org.opencontainers.image.ref.name"] == "v1.0-pytorch2.13-cpu"
    for result in results:
        arch = result.platform.split("/")[1]
        back = read_oci_layout(tmp_path / "out", None, platform=result.image.platform)
        assert back.digest() == result.digest and back.platform.arch == arch
        assert back.config()["created"] == "2023-11-14T22:13:20Z"  # SOURCE_DATE_EPOCH


def test_publish_refuses_an_existing_output_before_building(
    project: Path, cache: Path, tmp_path: Path
) -> None:
    from torchslim.build import check_output
    from torchslim.errors import OutputExistsError

    out = tmp_path / "taken.tar"
    out.write_text("mine")
    bp = _plan(project, platform="linux/amd64", output=f"docker-archive:{out}")
    with pytest.raises(OutputExistsError, match="--force"):
        check_output(bp)
    assert out.read_text() == "mine"
    forced = _plan(project, platform="linux/amd64", output=f"docker-archive:{out}", force=True)
    result = build(forced.plans[0])
    written = publish(forced, [result])
    assert written is not None and written.digest == result.digest
    # The archive names the image in Docker's manifest form: the same config and layers.
    back = open_image(f"docker-archive:{out}")
    assert back.config_bytes() == result.image.config_bytes()


def test_slimming_that_breaks_the_app_is_undone_and_remembered(
    project: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app imports a helper from a package's tests/ folder, which the
    package-test-suites rule removes: the proof fails, the removal is undone for that
    package, the ledger says why, and the next build makes the same image directly."""
    helper = make_wheel(
        tmp_path,
        name="helpers",
        version="1.0",
        extra={
            "helpers/tests/__init__.py": b"",
            "helpers/tests/test_all.py": b"def test_it() -> None:\n    pass\n",
            "helpers/tests/fixtures.py": b"VALUE = 1\n",
        },
    )
    torch = make_wheel(tmp_path, name="torch", version="2.13.0")
    monkeypatch.setattr(lock_step, "_uv_lock", lambda *a: pylock(torch, helper))
    (project / "app" / "svc" / "__main__.py").write_text(
        "from helpers.tests import fixtures\n" + SERVER
    )
    plan = _plan(project, platform="linux/amd64").plans[0]
    first = build(plan)
    assert first.proof is not None and first.proof.ok
    undone = {r.path.rsplit("/", 2)[-2:][-1]: r for r in first.ledger.reverts()}
    assert {"__init__.py", "fixtures.py", "test_all.py"} <= set(undone)
    assert all(r.rule == "package-test-suites" for r in undone.values())
    assert "no module named 'helpers.tests'" in undone["fixtures.py"].reason
    second = build(plan)
    assert second.digest == first.digest
    assert all(layer.cached for layer in second.layers)


def test_a_project_error_is_one_error_not_a_revert(project: Path, cache: Path) -> None:
    from torchslim.build.prove import ProofError

    (project / "app" / "svc" / "__main__.py").write_text("import not_installed_anywhere\n")
    plan = _plan(project, platform="linux/amd64").plans[0]
    with pytest.raises(ProofError, match="not because of slimming.*not_installed_anywhere"):
        build(plan)


def test_writable_paths_belong_to_the_app_user(project: Path, cache: Path) -> None:
    import tarfile

    config = project / "torchslim.toml"
    config.write_text(config.read_text() + 'writable = ["/app/uploads", "/var/cache/svc"]\n')
    result = build(_plan(project, platform="linux/amd64").plans[0])
    members: dict[str, tarfile.TarInfo] = {}
    for layer in result.image.layers():
        with result.image.open_layer(layer) as blob, tarfile.open(fileobj=blob, mode="r|*") as tar:
            members.update({m.name.rstrip("/"): m for m in tar})
    for path in ("app/uploads", "var/cache/svc"):
        assert members[path].isdir() and (members[path].uid, members[path].gid) == (1000, 1000)
    assert members["app"].uid == 0 and members["app/app/svc/__init__.py"].uid == 0
    config = result.image.config()["config"]
    assert "HOME=/tmp" in config["Env"] and "HF_HOME=/tmp/.cache/huggingface" in config["Env"]
    # volumes: a runtime mounts one on each, writable even under --read-only
    assert config["Volumes"] == {"/app/uploads": {}, "/var/cache/svc": {}}


def test_an_app_edit_serves_again_but_loads_nothing_loaded_before(
    project: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each part of the proof is cached by what it checked (issue 18): the loads by the
    layers holding shared objects, the whole proof by the image digest."""
    import torchslim.build.prove as prove_step

    calls: list[object] = []
    real = prove_step.prove_rootfs

    def spy(*args: object, **kw: object) -> object:
        calls.append(kw.get("check_paths"))
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(prove_step, "prove_rootfs", spy)
    plan = _plan(project, platform="linux/amd64").plans[0]
    first = build(plan)
    assert calls == [None]  # everything loaded
    build(plan)
    assert calls == [None]  # the same image: not proven again
    main = project / "app" / "svc" / "__main__.py"
    main.write_text(main.read_text().replace('b"value %d"', 'b"v=%d"'))
    edited = build(_plan(project, platform="linux/amd64").plans[0])
    assert calls == [None, []]  # served and imported again; no library loaded again
    assert edited.digest != first.digest
    assert edited.proof is not None and edited.proof.ok and edited.proof.served is not None
    assert first.proof is not None
    assert (edited.proof.libraries, edited.proof.extensions) == (
        first.proof.libraries,
        first.proof.extensions,
    )


def test_init_auto_keeps_no_init_for_a_service_that_stops_on_sigterm(
    project: Path, cache: Path
) -> None:
    """Issue 22: ``init = "auto"`` (what ``init`` writes for a Dockerfile's tini) adds no
    init when the served proof saw the service stop on SIGTERM as PID 1, and says so."""
    with (project / "torchslim.toml").open("a") as f:
        f.write('init = "auto"\n')
    result = build(_plan(project, platform="linux/amd64").plans[0])
    assert result.init == "none"
    assert result.init_why and "stop on SIGTERM in" in result.init_why, result.init_why
    assert result.image.config()["config"].get("Entrypoint") in (None, [])


def test_init_auto_on_an_own_base_warns_when_the_service_ignores_sigterm(
    project: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service that ignores SIGTERM as PID 1 would get Debian's tini; on an own base
    there is none to add, so the build says what to do instead."""
    import dataclasses

    import torchslim.build.prove as prove_step

    serve_spec = prove_step.serve_spec
    monkeypatch.setattr(
        prove_step, "serve_spec",
        lambda *a: (s := serve_spec(*a)) and dataclasses.replace(s, grace=1.0),
    )  # fmt: skip
    main = project / "app" / "svc" / "__main__.py"
    main.write_text(SERVER.replace("signal.signal(signal.SIGTERM", "print(signal.SIGTERM"))
    with (project / "torchslim.toml").open("a") as f:
        f.write('init = "auto"\n')
    warned: list[str] = []

    class Steps(QuietSteps):
        def warn(self, text: str) -> None:
            warned.append(text)

    result = build(_plan(project, platform="linux/amd64").plans[0], Steps())
    assert result.init == "none" and result.proof is not None
    assert result.proof.served is not None and result.proof.served.stopped == "killed after 1 s"
    assert any("tini comes only with base = debian" in w for w in warned), warned
