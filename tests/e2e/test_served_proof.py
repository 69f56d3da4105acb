"""The served proof on a real project (issue 18): Flask 2.0.3 with Werkzeug left free is
refused in one line naming Werkzeug; pinned, it is served, proven and answers in podman;
then each way a real service fails to be one, built for real and refused with its line.

The project (tests/projects/flask-werkzeug) is copied per test; every build shares the
session's torchslim cache, so torch's layer is built once.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from support.corpus import build_project, copy_project, failed_build

from .test_projects import serving

pytestmark = [pytest.mark.e2e, pytest.mark.network]


def project(tmp_path: Path, *, requirements: str = "flask==2.0.3\n", extra: str = "") -> Path:
    root = copy_project("flask-werkzeug", tmp_path / "flask-werkzeug")
    (root / "requirements.txt").write_text(requirements)
    if extra:
        with (root / "torchslim.toml").open("a") as f:
            f.write(extra)
    return root


PINNED = "flask==2.0.3\nwerkzeug<3\n"


def test_flask_with_free_werkzeug_is_refused_naming_werkzeug(
    ts_cache: Path, tmp_path: Path
) -> None:
    line = failed_build(project(tmp_path), tmp_path)
    assert "python app.py exited 1 before listening on :5000" in line, line
    assert "ImportError: cannot import name 'url_quote' from 'werkzeug.urls'" in line, line
    assert "(flask/helpers.py, line" in line, line
    assert re.search(r"Werkzeug 3\.[\d.]+ is locked: pin the Werkzeug release", line), line


def image_config(archive: Path) -> dict[str, object]:
    """The runtime config of the image in a docker-archive."""
    import json
    import tarfile

    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    return dict(config["config"])


def test_flask_with_werkzeug_pinned_is_served_proven_and_answers(
    ts_cache: Path, tmp_path: Path
) -> None:
    """Flask's dev server sets no SIGTERM handler, so as PID 1 it would not stop (as under
    podman): ``init = "auto"`` (what ``init`` writes for a Dockerfile's tini) sees that in
    the served proof and builds again with Debian's tini, and the proof sees it stop."""
    root = project(tmp_path, requirements=PINNED, extra='init = "auto"\n')
    built = build_project(root, tmp_path / "ok.tar")
    assert built.report["init"]["init"] == "tini", built.report["init"]
    assert "not stop on SIGTERM as PID 1" in built.report["init"]["why"]
    proof = built.report["proof"]
    assert proof["status"] == "proven", proof
    served = proof["served"]
    assert served["health"].startswith("/healthz 200 after ")
    assert served["requests"] == 1 and served["listening"] == ["0.0.0.0:5000"]
    assert served["stopped"].startswith("on SIGTERM"), served
    config = image_config(built.archive)
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert config["Cmd"] == ["python", "app.py"]
    with serving(built, 5000, "/healthz") as url:
        r = httpx.post(url + "/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.json() == {"outputs": [[5.0, 5.0]]}


def test_gunicorn_with_two_workers_is_served(ts_cache: Path, tmp_path: Path) -> None:
    cmd = 'cmd = ["gunicorn", "-w", "2", "--bind", "0.0.0.0:5000", "app:app"]\n'
    root = project(tmp_path, requirements=PINNED + "gunicorn==23.0.0\n")
    text = (root / "torchslim.toml").read_text().replace('cmd = ["python", "app.py"]\n', cmd)
    (root / "torchslim.toml").write_text(text)
    built = build_project(root, tmp_path / "gunicorn.tar")
    assert built.report["proof"]["status"] == "proven"
    assert built.report["proof"]["served"]["stopped"].startswith("on SIGTERM")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            'HOST = "127.0.0.1"',
            "listens only on 127.0.0.1:5000, which nothing outside the container reaches",
        ),
        ('PORT = "5001"', "listened on :5001, not on port 5000: set port = 5001"),
        ('DOWNLOAD_AT_START = "1"', "ship the weights in the image (`model`)"),
        ('NEVER_LISTEN = "1"', "did not listen on port 5000 within"),
    ],
    ids=["loopback-only", "wrong-port", "downloads-at-start", "never-listens"],
)
def test_a_service_that_is_not_one_is_refused_in_one_line(
    ts_cache: Path, tmp_path: Path, env: str, expected: str
) -> None:
    extra = f"env = {{ {env} }}\nproof-timeout = 20\n"
    line = failed_build(project(tmp_path, requirements=PINNED, extra=extra), tmp_path)
    assert expected in line, line


def test_scipy_116_and_matplotlib_without_tk_are_proven_with_warnings(
    ts_cache: Path, tmp_path: Path
) -> None:
    """Issue 22: scipy >= 1.16's _matfuncs_sqrtm_triu and matplotlib's Tk backend fail
    to import on their own; the service never loads them, so they are warnings naming
    them and their distributions, and the image is written and answers."""
    root = copy_project("scipy-matplotlib", tmp_path / "scipy-matplotlib")
    built = build_project(root, tmp_path / "plots.tar")
    proof = built.report["proof"]
    assert proof["status"] == "proven", proof
    assert proof["served"]["requests"] == 2
    warned = {w["subject"].rsplit("/", 1)[-1].split(".")[0]: w for w in proof["warnings"]}
    assert "_matfuncs_sqrtm_triu" in warned, proof["warnings"]
    assert warned["_matfuncs_sqrtm_triu"]["package"] == "scipy 1.17.1"
    assert "_tkagg" in warned and warned["_tkagg"]["package"] == "matplotlib 3.11.2"
    with serving(built, 8000, "/health") as url:
        r = httpx.post(url + "/sqrtm", json=[[4.0, 0.0], [0.0, 9.0]])
        assert r.json()["sqrtm"] == [[2.0, 0.0], [0.0, 3.0]]
        png = httpx.get(url + "/plot.png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


# ---- slimming undone by serving (issue 18, item 4) -----------------------------------

REFDATA_INIT = b"""\
import json
from pathlib import Path

# A package that reads a file kept beside its own test suite (as some do for reference
# data): nothing imports the suite, so slimming's package-test-suites rule drops it.
REFERENCE = json.loads((Path(__file__).parent / "tests" / "reference.json").read_text())
"""

REFDATA_SERVER = """\
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

import refdata

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stops as PID 1


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(refdata.REFERENCE).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""

REFDATA_CONFIG = """\
name = "refdata-svc"
torch = "2.13.0"
app = "."
cmd = ["python3", "serve.py"]
port = 8080
health = "/"
"""


def test_a_file_slimming_removed_is_found_by_serving_and_kept(
    ts_cache: Path, tmp_path: Path
) -> None:
    """The service dies at start on a data file in its package's tests/ folder. Undoing
    that package's slimming makes it serve (a few bytes: not narrowed further); the build
    keeps them, says so, remembers it, and the image answers in podman. Only that
    package's layer is rebuilt: torch's comes from the cache."""
    from support.corpus import torchslim
    from support.wheels import make_wheel

    root = tmp_path / "refdata-svc"
    (root / "wheels").mkdir(parents=True)
    make_wheel(root / "wheels", name="refdata", extra={
        "refdata/__init__.py": REFDATA_INIT,
        "refdata/tests/__init__.py": b"",
        "refdata/tests/test_reference.py": b"def test_answer():\n    assert True\n",
        "refdata/tests/reference.json": b'{"answer": 42}',
    })  # fmt: skip
    (root / "requirements.txt").write_text("./wheels/refdata-1.0-py3-none-any.whl\n")
    (root / "serve.py").write_text(REFDATA_SERVER)
    (root / "torchslim.toml").write_text(REFDATA_CONFIG)
    out = tmp_path / "refdata.tar"
    proc = torchslim("build", str(root), "--output", f"docker-archive:{out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = "/usr/local/lib/python3.11/dist-packages/refdata/tests/reference.json"
    [warning] = [line for line in proc.stderr.splitlines() if "slimming undone for" in line]
    assert kept in warning and "(rule package-test-suites)" in warning, warning
    assert "FileNotFoundError" in warning, warning
    assert "found in 1 served proof" in warning and "not narrowed" not in warning, warning
    search = proc.stderr[proc.stderr.index("serving it with") :]
    assert "Writing layer deps" in search and "Writing layer torch" not in search, search
    # remembered: the next build makes the same image without failing first
    again = build_project(root, tmp_path / "again.tar")
    assert again.report["proof"]["status"] == "proven"
    reverted = again.report["ledger"]["reverted"]
    assert [r["rule"] for r in reverted if r["path"] == kept] == ["package-test-suites"], reverted
    with serving(again, 8080, "/") as url:
        assert httpx.get(url + "/").json() == {"answer": 42}
