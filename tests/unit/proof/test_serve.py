"""The served proof on a real root (the host's Python linked into a directory): services
that answer, and each way a service fails to be one (issue 18, 22)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.proofroot import ENV, USER, make_root, processes_with

from torchslim.proof.census import ran_code_under
from torchslim.proof.refusals import error_line
from torchslim.proof.serve import Served, ServeSpec, SmokeRequest, serve
from torchslim.sandbox.run import sandbox_available
from torchslim.smokeconfig import RequestConfig

# A small service: ``python3 -c SERVER HOST PORT``; /health 200, /echo reports the upload.
SERVER = """
import http.server, signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as uvicorn and gunicorn do
host, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
        self.wfile.write(b"ok")
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        good = b'name="image"; filename="cat.png"' in body and b"PNGDATA" in body
        good = good and self.headers["Content-Type"].startswith("multipart/form-data")
        self.send_response(200 if good else 400); self.end_headers()
        self.wfile.write(b"got it" if good else body[:100])
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((host, port), H).serve_forever()
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = sandbox_available()
    if reason is not None:
        pytest.skip(f"no sandbox on this host: {reason}")
    yield make_root(tmp_path_factory.mktemp("serve") / "root")


def run(root: Path, cmd: list[str], port: int = 8000, **kw: object) -> Served:
    spec = ServeSpec(port=port, **{"health": "/health", "timeout": 15.0, **kw})  # type: ignore[arg-type]
    return serve(root, cmd, spec, env=ENV, user=USER, workdir="/app")


def server(host: str = "0.0.0.0", port: int = 8000) -> list[str]:
    return ["python3", "-c", SERVER, host, str(port)]


def test_a_service_that_answers_is_served_and_stops_on_sigterm(root: Path, tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(b"PNGDATA")
    upload = RequestConfig.model_validate({"path": "/echo", "upload": "cat.png", "field": "image"})
    method, body, headers = upload.wire(tmp_path)
    requests = (
        SmokeRequest(method, "/echo", 200, body, headers),
        SmokeRequest("GET", "/missing", 404),
    )
    result = run(root, server(), requests=requests)
    assert result.ok, result
    assert result.listening == ("0.0.0.0:8000",)
    assert result.health is not None and result.health.startswith("/health 200 after ")
    assert result.requests == 2
    assert result.stopped is not None and result.stopped.startswith("on SIGTERM in ")
    assert result.warnings == ()


def test_a_smoke_request_with_another_status_fails_with_its_answer(root: Path) -> None:
    result = run(root, server(), requests=(SmokeRequest("POST", "/echo", 200, b"plain"),))
    assert result.failure == "smoke request POST /echo answered HTTP 400, expected 200: plain"


def test_listening_only_on_loopback_is_refused_with_the_setting(root: Path) -> None:
    result = run(root, server("127.0.0.1"))
    assert result.failure is not None
    assert "listens only on 127.0.0.1:8000, which nothing outside the container reaches" in (
        result.failure
    )
    gradio = run(root, [*server("127.0.0.1"), "gradio"])
    assert gradio.failure is not None and "GRADIO_SERVER_NAME = '0.0.0.0'" in gradio.failure


def test_listening_on_another_port_names_it(root: Path) -> None:
    result = run(root, server(port=7860), timeout=3.0)
    assert result.failure is not None
    assert "listened on :7860, not on port 8000: set port = 7860" in result.failure


def test_never_listening_is_a_timeout_naming_the_port(root: Path) -> None:
    result = run(root, ["python3", "-c", "import time; time.sleep(60)"], timeout=2.0)
    assert result.failure is not None
    assert "did not listen on port 8000 within" in result.failure
    assert "proof_timeout" in result.failure


def test_a_health_path_that_never_answers_2xx(root: Path) -> None:
    result = run(root, server(), health="/missing", timeout=3.0)
    assert result.failure is not None
    assert "listened on :8000 but /missing did not answer 2xx" in result.failure
    assert "last: HTTP 404" in result.failure


def test_dying_at_start_names_the_error_and_its_line(root: Path) -> None:
    (root / "app/broken.py").write_text("import json\nfrom json import url_quote\n")
    try:
        result = run(root, ["python3", "/app/broken.py"])
    finally:
        (root / "app/broken.py").unlink()
    assert result.failure is not None
    assert result.failure.startswith("python3 /app/broken.py exited 1 before listening on :8000: ")
    assert "ImportError: cannot import name 'url_quote' from 'json'" in result.failure
    assert result.failure.endswith("(/app/broken.py, line 2)")


def test_a_download_at_start_says_to_ship_the_weights(root: Path) -> None:
    code = "import socket; socket.getaddrinfo('huggingface.co', 443)"
    result = run(root, ["python3", "-c", code])
    assert result.failure is not None
    assert "gaierror" in result.failure
    assert "ship the weights in the image (`model`)" in result.failure


def test_a_unix_socket_only_service_is_named(root: Path) -> None:
    code = (
        "import socket, time; s = socket.socket(socket.AF_UNIX); s.bind('/tmp/app.sock'); "
        "s.listen(); time.sleep(60)"
    )
    result = run(root, ["python3", "-c", code], timeout=2.0)
    assert result.failure is not None
    assert "listened only on the unix socket /tmp/app.sock" in result.failure


@pytest.mark.parametrize("ignore", ["SIG_IGN", "no handler at all, as PID 1"])
def test_ignoring_sigterm_is_a_warning_and_it_is_killed(root: Path, ignore: str) -> None:
    """The service is PID 1, as in a container without an init: with no handler of its own
    (a plain ``http.server``, Flask's dev server) the kernel drops SIGTERM."""
    code = SERVER.replace("lambda *_: sys.exit(0)", "signal.SIG_IGN")
    if ignore != "SIG_IGN":
        code = code.replace("signal.signal(signal.SIGTERM, signal.SIG_IGN)", "")
    result = run(root, ["python3", "-c", code, "0.0.0.0", "8000"], grace=1.0)
    assert result.ok
    assert result.stopped == "killed after 1 s"
    assert result.warnings and "did not stop within 1 s of SIGTERM as PID 1" in result.warnings[0]
    assert 'set init = "tini"' in result.warnings[0]


def test_the_service_cannot_reach_out_and_leaves_nothing_behind(root: Path) -> None:
    """Writes to its root fail, only lo exists, and every child and daemon is gone."""
    marker = f"torchslim-serve-daemon-{os.getpid()}"
    code = f"""
import os, subprocess, sys, time
for path in ("/app/x", "/usr/x"):
    try:
        open(path, "w"); print("WROTE", path, flush=True)
    except OSError as e:
        print("refused", path, e.strerror, flush=True)
rows = open("/proc/net/dev").readlines()[2:]
print("ifaces", sorted(r.split(":")[0].strip() for r in rows), flush=True)
for _ in range(20):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "{marker}"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", "{marker}"])
    os._exit(0)
sys.argv[1:] = ["0.0.0.0", "8000"]
exec(compile({SERVER!r}, "server", "exec"))
"""
    result = run(root, ["python3", "-c", code])
    assert result.ok, result
    assert "refused /app/x Read-only file system" in result.output
    assert "refused /usr/x Read-only file system" in result.output
    assert "WROTE" not in result.output
    assert "ifaces ['lo']" in result.output
    time.sleep(0.2)
    assert processes_with(marker) == []


def test_error_line_takes_the_last_exception_and_its_innermost_frame() -> None:
    output = (
        "Traceback (most recent call last):\n"
        '  File "/app/app.py", line 1, in <module>\n'
        '  File "/usr/lib/python3/dist-packages/flask/__init__.py", line 7, in <module>\n'
        '  File "/usr/lib/python3/dist-packages/flask/helpers.py", line 16, in <module>\n'
        "ImportError: cannot import name 'url_quote' from 'werkzeug.urls'\n"
    )
    assert error_line(output) == (
        "ImportError: cannot import name 'url_quote' from 'werkzeug.urls' "
        "(flask/helpers.py, line 16)"
    )
    frozen = (
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3/dist-packages/cv2/__init__.py", line 181, in <module>\n'
        '  File "/usr/lib/python3.11/importlib/__init__.py", line 126, in import_module\n'
        '  File "<frozen importlib._bootstrap>", line 1176, in _find_and_load\n'
        "ImportError: libGL.so.1: cannot open shared object file: No such file or directory\n"
    )
    assert error_line(frozen).endswith("(cv2/__init__.py, line 181)")
    assert error_line("starting\nbye\n") == "bye"
    assert error_line("") == "(no output)"


def test_a_served_proofs_label_holds_no_timing() -> None:
    """The label is part of the image config: timings would change the digest per host."""
    from torchslim.proof.result import Proof
    from torchslim.proof.serve import Served

    def label(took: str) -> str:
        served = Served("uvicorn app:app", 8000, health=f"/health 200 after {took} s")
        proof = Proof("proven", "chroot", entry="app:app", entry_check="imports", served=served)
        return proof.label()

    assert label("0.1") == label("12.7")
    assert label("0.1").startswith("proven: served: /health 200; ")
    assert "after" not in label("3.0")


def test_the_census_sees_every_python_file_the_service_opens(root: Path) -> None:
    # Loaded only on a request, and through importlib (which CPython's import-time report
    # misses): the census still sees it, from every process; the image gains nothing.
    code = SERVER.replace(
        "    def do_GET(self):\n",
        "    def do_GET(self):\n        __import__('importlib').import_module('xml.dom.minidom')\n"
        "        import service.main\n",  # the app's, found through "" (cwd /app)
    )
    # The census folder is the host's: the service can write nothing there.
    code = PROBE_FOLDER + code
    result = run(root, ["python3", "-c", code, "0.0.0.0", "8000"], census=True)
    assert result.ok, result
    opened = result.opened
    assert any("/http/" in p and "server" in p for p in opened), opened[:20]
    assert any("/xml/dom/" in p and "minidom" in p for p in opened), opened[-20:]
    assert len(opened) == len(set(opened)) and all(p.startswith("/") for p in opened)
    assert "/app/service/main.py" in opened, [p for p in opened if "service" in p]
    assert "/app/service/main.py" in result.ran
    assert ran_code_under(result.ran, "/app") and not ran_code_under(result.ran, "/srv")
    assert "Error in sitecustomize" not in result.output
    assert "census folder: Read-only file system" in result.output, result.output
    assert not (root / "tmp/.torchslim-census").exists()
    assert run(root, server()).opened == ()  # no census asked: nothing recorded

    # Read at start but never run (as Streamlit does with its page): opened, not ran.
    reads = "open('/app/service/main.py').read()\n" + SERVER
    read = run(root, ["python3", "-c", reads, "0.0.0.0", "8000"], census=True)
    assert "/app/service/main.py" in read.opened and not ran_code_under(read.ran, "/app")


PROBE_FOLDER = """
import sys
try:
    open("/tmp/.torchslim-census/planted", "w")
    print("census folder: writable", file=sys.stderr, flush=True)
except OSError as exc:
    print(f"census folder: {exc.strerror}", file=sys.stderr, flush=True)
"""
