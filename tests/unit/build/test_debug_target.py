"""``build --target debug``: the service image plus one tools layer, every service layer shared.

The tools (busybox-static's .deb, py-spy's wheel) are replaced by tiny ones made here, so
no network is needed; the real ones are fetched by the e2e test.
"""

from __future__ import annotations

import io
import lzma
import tarfile
import zipfile
from pathlib import Path

import pytest
from support.fakebuild import make_base_layout, make_service, plan_for
from support.wheels import make_wheel

from torchslim.analyze.classify import DEBUG_TOOLS_LAYER, FileFacts, classify
from torchslim.analyze.engine import analyze_image
from torchslim.build import build, debugtools
from torchslim.build.plan import Plan
from torchslim.cache import BlobStore
from torchslim.config import Steps
from torchslim.debian.spec import DebPackage
from torchslim.oci.image import Image
from torchslim.oci.limits import Limits
from torchslim.torchmeta import LABEL_PROOF

FAKE_BUSYBOX = b"\x7fELF fake busybox\0" + b"\0[\0[[\0cat\0ls\0sh\0\0tail"
FAKE_PY_SPY = b"\x7fELF fake py-spy"


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.mode, info.size = mode, len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _deb(files: dict[str, tuple[bytes, int]]) -> bytes:
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", lzma.compress(_tar({"./control": (b"Package: x\n", 0o644)}))),
        ("data.tar.xz", lzma.compress(_tar(files))),
    ]
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        out.append(header.encode() + data + (b"\n" if len(data) % 2 else b""))
    return b"".join(out)


def _fake_inputs(tmp: Path) -> debugtools.ToolInputs:
    deb = tmp / "busybox-static.deb"
    deb.write_bytes(_deb({"./bin/busybox": (FAKE_BUSYBOX, 0o755)}))
    wheel = tmp / "py_spy-0.4.3-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("py_spy-0.4.3.data/scripts/py-spy", FAKE_PY_SPY)
    store = BlobStore(tmp / "tool-blobs")
    busybox = DebPackage(
        "busybox-static", "1:1.35.0-4", "amd64", "pool/b.deb", store.put_file(deb), 1
    )
    real = debugtools.py_spy_wheel("amd64")
    py_spy = type(real)(real.name, real.version, wheel.name, wheel.as_uri(), "0" * 64, None)
    return debugtools.ToolInputs(busybox, deb, py_spy, wheel)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))
    wheel = make_wheel(tmp_path, name="torch", version="2.13.0")
    root = make_service(tmp_path / "svc", make_base_layout(tmp_path), [wheel], monkeypatch)
    inputs = _fake_inputs(tmp_path)

    def fake(plan: Plan, store: BlobStore, steps: Steps) -> debugtools.ToolInputs:
        return inputs

    monkeypatch.setattr(debugtools, "tool_inputs", fake)
    return root


def test_plan_debug_is_the_service_with_a_debug_tag(project: Path) -> None:
    plan = plan_for(project, platform="linux/amd64", target="debug").plans[0]
    assert plan.service and plan.debug and plan.app_files and plan.model_files
    assert plan.tag == "v1.0-pytorch2.13-cpu-debug"
    given = plan_for(project, platform="linux/amd64", target="debug", tag="v7").plans[0]
    assert given.tag == "v7-debug"
    image = plan_for(project, platform="linux/amd64").plans[0]
    assert not image.debug and image.tag == "v1.0-pytorch2.13-cpu"


def test_applets_from_the_binary_table_else_the_usual_ones() -> None:
    assert debugtools.applets(FAKE_BUSYBOX) == ["[", "[[", "cat", "ls", "sh"]
    assert "sh" in debugtools.applets(b"no table here")


def _layer_files(image: Image, index: int) -> dict[str, tarfile.TarInfo]:
    layer = image.layers()[index]
    data = BlobStore().path(layer.descriptor.digest).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name.rstrip("/"): m for m in t.getmembers()}


def test_debug_image_shares_every_service_layer_and_adds_only_tools(project: Path) -> None:
    service = build(plan_for(project, platform="linux/amd64").plans[0])
    debug = build(plan_for(project, platform="linux/amd64", target="debug").plans[0])
    names = [layer.name for layer in debug.layers]
    assert names == [*(layer.name for layer in service.layers), "debug-tools"]
    shared = [layer.descriptor.digest for layer in service.image.layers()]
    assert [layer.descriptor.digest for layer in debug.image.layers()][:-1] == shared
    assert debug.tag.endswith("-debug") and debug.proof is not None and debug.proof.ok
    want, got = service.image.config()["config"], debug.image.config()["config"]
    for key in ("User", "Cmd", "Entrypoint", "Healthcheck", "Env", "WorkingDir"):
        assert got.get(key) == want.get(key), key
    labels = {k: v for k, v in got["Labels"].items() if k != LABEL_PROOF}
    assert labels == {k: v for k, v in want["Labels"].items() if k != LABEL_PROOF}
    files = _layer_files(debug.image, -1)
    assert files["usr/local/bin/sh"].issym() and files["usr/local/bin/sh"].linkname == "busybox"
    assert files["usr/local/bin/busybox"].mode & 0o111 and files["usr/local/bin/py-spy"].isfile()
    assert "var/lib/dpkg/status.d/busybox-static" in files
    assert all(n.startswith(("usr", "var")) for n in files), sorted(files)
    history = debug.image.config()["history"][-1]["created_by"]
    assert history == DEBUG_TOOLS_LAYER
    analysis = analyze_image(debug.image, name="svc-debug", limits=Limits())
    tools = analysis.category("debug-tools")
    assert tools is not None and tools.bytes >= len(FAKE_BUSYBOX) + len(FAKE_PY_SPY)
    shown = {path for path, _ in tools.examples}
    assert {"usr/local/bin/busybox", "usr/local/bin/py-spy"} <= shown, shown


def test_analyze_puts_the_tools_layer_in_its_own_category() -> None:
    tools = FileFacts("usr/local/bin/busybox", "", "", False, False, DEBUG_TOOLS_LAYER)
    assert classify(tools).id == "debug-tools"
    elsewhere = FileFacts("usr/local/bin/busybox", "", "", False, False, "torchslim: app")
    assert classify(elsewhere).id == "shells"
