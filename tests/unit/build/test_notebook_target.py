"""``build --target notebook``: the service image plus a Jupyter layer, every service layer
shared, the launcher refusing to start without a token.

JupyterLab is replaced by a tiny fake ``jupyterlab`` wheel (an HTTP server that answers
``/api/status`` with the token and 403 without it), so no network is needed; the real one
is built by the e2e test.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support.fakebuild import make_base_layout, make_service, plan_for
from support.wheels import make_wheel

from torchslim.build import build, notebook, notebook_launcher
from torchslim.build.plan import Plan
from torchslim.build.prove import serve_spec
from torchslim.cache import BlobStore
from torchslim.config import Steps, load_config
from torchslim.deps.pylock import Lock, LockedWheel, Target
from torchslim.generate.k8s import render_k8s
from torchslim.oci.image import Image
from torchslim.torchmeta import LABEL_PROOF

FAKE_JUPYTER = b"""\
import http.server, json, os, signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as jupyter-server does
TOKEN = os.environ["JUPYTER_TOKEN"]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path, _, query = self.path.partition("?")
        auth = self.headers.get("Authorization") == "token " + TOKEN
        ok = auth or query == "token=" + TOKEN
        code = 200 if path == "/api" or (ok and path.startswith("/api/")) else 403
        body = json.dumps({"argv": sys.argv[1:]}).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("0.0.0.0", 8888), H).serve_forever()
"""
LAUNCHER = Path(notebook_launcher.__file__)
# The launcher refuses root (tests may run as root): it runs as if uid 1000.
AS_USER = (
    "import os, runpy, sys; os.getuid = lambda: 1000; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))
    wheel = make_wheel(tmp_path, name="torch", version="2.13.0")
    root = make_service(tmp_path / "svc", make_base_layout(tmp_path), [wheel], monkeypatch)
    (tmp_path / "jl").mkdir()
    fake = make_wheel(
        tmp_path / "jl",
        name="jupyterlab",
        version="4.9",
        extra={"jupyterlab/__main__.py": FAKE_JUPYTER},
    )
    locked = LockedWheel("jupyterlab", "4.9", fake.name, fake.as_uri(), "0" * 64, None)

    def fake_inputs(
        plan: Plan, service: Lock, target: Target, store: BlobStore, steps: Steps
    ) -> notebook.NotebookInputs:
        assert service.get("torch") is not None and target.arch == "x86_64"
        return notebook.NotebookInputs((locked,), {"jupyterlab": fake})

    monkeypatch.setattr(notebook, "notebook_inputs", fake_inputs)
    return root


def test_plan_notebook_is_the_service_with_a_notebook_tag(project: Path) -> None:
    plan = plan_for(project, platform="linux/amd64", target="notebook").plans[0]
    assert plan.service and plan.notebook and not plan.debug and plan.app_files
    assert plan.tag == "v1.0-pytorch2.13-cpu-notebook"
    assert plan_for(project, platform="linux/amd64", target="notebook", tag="v7").tag == (
        "v7-notebook"
    )


def test_proof_spec_asks_status_with_the_token_and_403_without(project: Path) -> None:
    plan = plan_for(project, platform="linux/amd64", target="notebook").plans[0]
    spec = serve_spec(plan, "t0k")
    assert spec is not None and spec.port == 8888 and spec.health == "/api/status?token=t0k"
    assert [(r.path, r.status) for r in spec.requests][0] == ("/api/status", 403)
    assert "/app/notebooks" in spec.writable


def test_layer_wheels_are_those_the_service_lacks() -> None:
    def w(name: str, version: str) -> LockedWheel:
        return LockedWheel(name, version, f"{name}-{version}-py3-none-any.whl", "u", "0" * 64, 1)

    service = Lock((w("torch", "2.13.0"), w("six", "1.17.0")))
    got = notebook.layer_wheels(Lock((w("six", "1.17.0"), w("jupyterlab", "4.9"))), service)
    assert [x.name for x in got] == ["jupyterlab"]
    with pytest.raises(Exception, match="six 1.16.0 but the service locks 1.17.0"):
        notebook.layer_wheels(Lock((w("six", "1.16.0"),)), service)
    assert notebook.constraints(service) == ["torch==2.13.0", "six==1.17.0"]


def _layer_files(image: Image, index: int) -> dict[str, tarfile.TarInfo]:
    layer = image.layers()[index]
    data = BlobStore().path(layer.descriptor.digest).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name.rstrip("/"): m for m in t.getmembers()}


def test_notebook_image_shares_every_service_layer_and_is_proven(project: Path) -> None:
    service = build(plan_for(project, platform="linux/amd64").plans[0])
    nb = build(plan_for(project, platform="linux/amd64", target="notebook").plans[0])
    assert [x.name for x in nb.layers] == [*(x.name for x in service.layers), "jupyter"]
    shared = [x.descriptor.digest for x in service.image.layers()]
    assert [x.descriptor.digest for x in nb.image.layers()][:-1] == shared
    assert nb.tag.endswith("-notebook") and nb.proof is not None and nb.proof.ok
    assert nb.proof.served is not None and nb.proof.served.requests == 2
    want, got = service.image.config()["config"], nb.image.config()["config"]
    assert got["User"] == want["User"] == "1000:1000"
    assert got["Cmd"][1:] == ["-m", "torchslim_notebook"]
    assert got["ExposedPorts"] == {"8888/tcp": {}}
    assert "/app/notebooks" in got["Volumes"]
    assert "/api" in got["Healthcheck"]["Test"][-1]
    env = dict(e.split("=", 1) for e in got["Env"])
    assert not any("TOKEN" in k for k in env), env
    assert env["JUPYTER_RUNTIME_DIR"].startswith("/tmp/")
    assert env["JUPYTER_CONFIG_DIR"].startswith("/tmp/") and env["HOME"] == "/tmp"
    labels = {k: v for k, v in got["Labels"].items() if k != LABEL_PROOF}
    assert labels == {k: v for k, v in want["Labels"].items() if k != LABEL_PROOF}
    files = _layer_files(nb.image, -1)
    folder = files["app/notebooks"]
    assert folder.isdir() and (folder.uid, folder.gid) == (1000, 1000)
    assert any(n.endswith("-packages/torchslim_notebook.py") for n in files)
    assert any(n.endswith("-packages/jupyterlab/__main__.py") for n in files)
    assert all(files[n].uid == 0 for n in files if not n.startswith("app/notebooks"))


def _launch(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The launcher on the host's Python, with a fake ``jupyterlab`` that prints its view."""
    (tmp_path / "jupyterlab").mkdir(exist_ok=True)
    (tmp_path / "jupyterlab" / "__init__.py").write_text("")
    (tmp_path / "jupyterlab" / "__main__.py").write_text(
        "import json, os, sys\nprint(json.dumps([sys.argv[1:], os.environ.get('JUPYTER_TOKEN')]))\n"
    )
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path)}
    base["JUPYTER_TOKEN_FILE"] = str(tmp_path / "no-such-secret")
    return subprocess.run(
        [sys.executable, "-c", AS_USER, str(LAUNCHER), *args],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_launcher_refuses_without_a_token_in_one_line(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    for env in ({}, {"JUPYTER_TOKEN": ""}, {"JUPYTER_TOKEN": "  "}):
        run = _launch(tmp_path, env)
        assert run.returncode == 2 and run.stdout == "", (env, run)
        assert run.stderr.count("\n") == 1 and "JUPYTER_TOKEN" in run.stderr
    secret.write_text("\n")
    run = _launch(tmp_path, {"JUPYTER_TOKEN_FILE": str(secret)})
    assert run.returncode == 2 and "without a token" in run.stderr
    run = _launch(tmp_path, {"JUPYTER_TOKEN": "abc"}, "--allow-root")
    assert run.returncode == 2 and "--allow-root" in run.stderr
    run = _launch(tmp_path, {"JUPYTER_TOKEN": "abc"}, "--IdentityProvider.token=")
    assert run.returncode == 2


def test_launcher_execs_jupyter_with_the_token_in_env_not_argv(tmp_path: Path) -> None:
    run = _launch(tmp_path, {"JUPYTER_TOKEN": "s3cret"})
    assert run.returncode == 0, run.stderr
    assert '"s3cret"]' in run.stdout and "s3cret" not in run.stdout.split("]")[0]
    assert "--ServerApp.port=8888" in run.stdout and "allow" not in run.stdout
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    run = _launch(tmp_path, {"JUPYTER_TOKEN_FILE": str(secret)})
    assert run.returncode == 0 and '"from-file"]' in run.stdout, run.stderr


def test_k8s_notebook_takes_the_token_from_a_secret_and_stays_clusterip(project: Path) -> None:
    cfg = load_config(project)
    text = render_k8s(cfg, image="reg.example/svc:v1.0", target="notebook")
    assert "image: 'reg.example/svc:v1.0-notebook'" in text or (
        'image: "reg.example/svc:v1.0-notebook"' in text
    ), text
    assert "secretKeyRef" in text and "svc-notebook-token" in text
    assert "type: ClusterIP" in text and "NodePort" not in text.split("apiVersion")[-1]
    assert "containerPort: 8888" in text and "readOnlyRootFilesystem: true" in text
    assert "mountPath: '/app/notebooks'" in text or 'mountPath: "/app/notebooks"' in text
    assert "TLS" in text and "port-forward" in text and "runAsUser: 1000" in text
    assert "LoadBalancer" not in text.split("kind: Service")[-1].split("#")[0]
