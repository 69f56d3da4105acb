"""The corpus (tests/projects): real project shapes, each built, loaded into podman, run
read-only as uid 1000 and asked a real question (issues 10 and 11).

Every project is built once per session into one shared torchslim cache, so torch's
layer is built once. None of them sets ``keep``: what the image needs, slimming leaves.
Set TORCHSLIM_CORPUS_TIMES=FILE to get each build's time, size and proof time as JSON.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from support.corpus import (
    Built,
    build_project,
    copy_project,
    error_lines,
    failed_build,
    halves,
    layer_files,
    torchslim,
)

from .conftest import free_port, podman, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.network]

RED, BLUE = (255, 0, 0), (0, 0, 255)
# Left half red, right half blue, 8x4: the answers below follow from it.
IMAGE = halves(8, 4, RED, BLUE)


class Corpus:
    """Projects built once per module into one cache; ``timings()`` is what each took."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.built: dict[str, Built] = {}

    def __call__(self, name: str, *extra: str) -> Built:
        """``tests/projects/<name>`` built with ``extra`` flags (memoized)."""
        if name not in self.built:
            project = copy_project(name, self.work / name)
            self.record(build_project(project, self.work / f"{name}.tar", *extra))
        return self.built[name]

    def record(self, built: Built) -> Built:
        self.built[built.name] = built
        return built

    def timings(self) -> dict[str, dict[str, object]]:
        return {name: b.timing() for name, b in self.built.items()}


@pytest.fixture(scope="module")
def corpus(ts_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    built = Corpus(tmp_path_factory.mktemp("corpus"))
    yield built
    if out := os.environ.get("TORCHSLIM_CORPUS_TIMES"):
        Path(out).write_text(json.dumps(built.timings(), indent=2) + "\n")


@contextmanager
def serving(built: Built, port: int, health: str, *run_args: str) -> Iterator[str]:
    """The image loaded into podman and run read-only (only /tmp writable); the base URL."""
    loaded = podman("load", "-i", str(built.archive)).stdout
    image = re.search(r"Loaded image(?:\(s\))?: (\S+)", loaded)
    assert image, loaded
    host_port = free_port()
    name = f"corpus-{built.name}-{host_port}"
    podman(
        "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "-p", f"127.0.0.1:{host_port}:{port}", *run_args, image[1],
    )  # fmt: skip
    url = f"http://127.0.0.1:{host_port}"
    try:
        try:
            wait_healthy(url + health, timeout=180)
        except AssertionError as exc:
            logs = podman("logs", name, check=False)
            raise AssertionError(f"{exc}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}") from None
        yield url
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("rmi", "-f", image[1], check=False)


def assert_proven(built: Built) -> None:
    proof = built.report["proof"]
    assert proof["status"] == "proven", proof
    assert proof["failures"] == []


# ---- issue 10: the shapes ------------------------------------------------------------


def test_fastapi_pyproject_only_numpy2_pillow_current(corpus: Corpus) -> None:
    """PEP 621 dependencies (torch among them) and [tool.torchslim] in pyproject.toml: no
    requirements file, no lock. numpy 2.x + Pillow current decode and reduce an upload."""
    built = corpus("fastapi-pyproject")
    assert_proven(built)
    assert built.report["proof"]["entry"] == "imgstats.main:app"
    with serving(built, 8000, "/health") as url:
        health = httpx.get(url + "/health").json()
        assert (health["numpy"], health["pillow"]) == ("2.4.6", "13.0.0")
        assert health["torch"] == "2.13.0+cpu"
        r = httpx.post(url + "/describe", content=IMAGE)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "format": "RGB",
            "size": [8, 4],
            "mean": [127.5, 0.0, 127.5],
            "dominant": "RRRRBBBB",
        }
        assert httpx.post(url + "/describe", content=b"not an image").status_code == 415


def test_flask_flat_repo_numpy1_pillow10_ships_no_secrets(corpus: Corpus) -> None:
    """``app = "."``: the repository root is the app. gunicorn serves Flask; numpy 1.26 and
    Pillow 10.1 work next to torch. Local secrets listed in .dockerignore stay out."""
    built = corpus("flask-flat")
    assert_proven(built)
    with serving(built, 5000, "/healthz") as url:
        health = httpx.get(url + "/healthz").json()
        assert (health["numpy"], health["pillow"]) == ("1.26.4", "10.1.0")
        r = httpx.post(url + "/predict", json={"inputs": [[1, 2, 3, 4]]})
        assert r.json() == {"outputs": [[1.0, 1.5]]}
        r = httpx.post(url + "/thumbnail", content=IMAGE)
        assert r.json() == {"size": [8, 4], "pixels": [list(RED), list(BLUE)]}
    app = layer_files(built.archive, built.layer("app")["digest"])
    assert {"app/app.py", "app/README.md"} <= app
    # the weights are in the model layer only; .dockerignore, tests and dev files never ship
    assert layer_files(built.archive, built.layer("model")["digest"]) == {"app/weights.pt"}
    never = {"app/weights.pt", "app/train.py", "app/tests/test_app.py",
             "app/requirements-dev.txt", "app/.dockerignore", "app/torchslim.toml"}  # fmt: skip
    assert not never & app


def test_debug_and_notebook_targets_of_the_flat_gunicorn_project(
    corpus: Corpus, tmp_path: Path
) -> None:
    """Issue 25 on a corpus project (gunicorn, ``app = "."``), not only the example: both
    targets keep every service layer and add one; each is proven by serving. The debug
    container joins the running service's PID namespace and py-spy dumps gunicorn; the
    notebook, read-only as uid 1000, refuses to start without a token and answers
    ``/api/status`` with it (403 without)."""
    built = corpus("flask-flat")
    service = [x["digest"] for x in built.report["layers"]]
    debug = build_project(built.project, tmp_path / "debug.tar", "--target", "debug")
    notebook = build_project(built.project, tmp_path / "nb.tar", "--target", "notebook")
    for target, layer, health in (
        (debug, "debug-tools", "/healthz 200"),
        (notebook, "jupyter", "/api/status?token=… 200"),  # the token is not shown
    ):
        assert target.report["proof"]["status"] == "proven", target.report["proof"]
        assert target.report["proof"]["served"]["health"].startswith(health)
        names = [x["name"] for x in target.report["layers"]]
        assert names[-1] == layer, names
        assert [x["digest"] for x in target.report["layers"][:-1]] == service
    assert notebook.report["proof"]["served"]["requests"] == 2  # with the token, without
    tools = podman("load", "-i", str(debug.archive)).stdout
    debug_image = re.search(r"Loaded image(?:\(s\))?: (\S+)", tools)
    assert debug_image and debug_image[1].endswith("-debug"), tools
    with serving(built, 5000, "/healthz") as url:
        name = f"corpus-{built.name}-{url.rsplit(':', 1)[1]}"
        dump = podman(
            "run", "--rm", "--pid", f"container:{name}", "--cap-add", "SYS_PTRACE",
            debug_image[1], "py-spy", "dump", "--pid", "1", check=False,
        )  # fmt: skip
        out = dump.stdout + dump.stderr
        assert dump.returncode == 0 and "gunicorn" in out, out
    podman("rmi", "-f", debug_image[1], check=False)
    loaded = podman("load", "-i", str(notebook.archive)).stdout
    nb_image = re.search(r"Loaded image(?:\(s\))?: (\S+)", loaded)
    assert nb_image and nb_image[1].endswith("-notebook"), loaded
    refused = podman("run", "--rm", "--read-only", "--tmpfs", "/tmp", nb_image[1], check=False)
    assert refused.returncode != 0 and "refusing to start without a token" in refused.stderr
    port = free_port()
    name = f"corpus-notebook-{port}"
    podman(
        "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "-e", "JUPYTER_TOKEN=s3cret", "-p", f"127.0.0.1:{port}:8888", nb_image[1],
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/status?token=s3cret", timeout=120)
        assert httpx.get(f"http://127.0.0.1:{port}/api/status").status_code == 403
        uid = podman("exec", name, "python3", "-c", "import os; print(os.getuid())").stdout
        assert uid.strip() == "1000"
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("rmi", "-f", nb_image[1], check=False)


def test_flat_repo_secrets_present_not_shipped(corpus: Corpus, tmp_path: Path) -> None:
    """Secrets beside the code: the ones .dockerignore lists are left out silently; one it
    does not list stops the build in one line naming the file and both fixes."""
    project = copy_project("flask-flat", tmp_path / "flat")
    (project / ".env").write_text("DATABASE_URL=postgres://svc:hunter2@db/prod\n")
    (project / "deploy.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\n-----END PRIVATE KEY-----\n"
    )
    (project / ".aws").mkdir()
    (project / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = x\n")
    (project / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n")
    out = tmp_path / "x.tar"
    proc = torchslim("build", str(project), "--output", f"docker-archive:{out}")
    assert proc.returncode == 2, proc.stderr
    [line] = error_lines(proc)
    assert "id_ed25519" in line and "exclude" in line and "include" in line, line
    assert ".env" not in line and "deploy.pem" not in line and ".aws" not in line
    assert not out.exists()
    # listed in .dockerignore like the others: the build goes on and ships none of them
    with (project / ".dockerignore").open("a") as f:
        f.write("id_*\n")
    built = build_project(project, out)
    app = layer_files(built.archive, built.layer("app")["digest"])
    assert not any(
        n.startswith(("app/.env", "app/deploy.pem", "app/.aws", "app/id_")) for n in app
    ), sorted(app)
    assert built.layer("app")["digest"] == corpus("flask-flat").layer("app")["digest"]


def test_opencv_48_numpy1_from_uv_lock(corpus: Corpus) -> None:
    """uv.lock pins the prod closure with hashes; opencv-python-headless 4.8 (its bundled
    libraries in opencv_python_headless.libs) decodes a PNG on numpy 1.26."""
    built = corpus("opencv-uv")
    assert_proven(built)
    with serving(built, 8000, "/health") as url:
        health = httpx.get(url + "/health").json()
        assert (health["opencv"], health["numpy"]) == ("4.8.1", "1.26.4")
        body = httpx.post(url + "/gray", content=IMAGE).json()
        # BT.601 luma: red → 76, blue → 29
        assert body["shape"] == [4, 8, 3]
        assert body["levels"] == [29, 76]
        assert body["mean"] == 52.5
        assert body["edge_columns"] and set(body["edge_columns"]) <= {3, 4}


def test_opencv_current_numpy2_from_poetry_lock(corpus: Corpus) -> None:
    """poetry.lock (Poetry 2, PEP 621 project) pins opencv-python-headless 5 on numpy 2."""
    built = corpus("opencv-poetry")
    assert_proven(built)
    with serving(built, 8000, "/health") as url:
        health = httpx.get(url + "/health").json()
        assert (health["opencv"], health["numpy"]) == ("5.0.0", "2.4.6")
        body = httpx.post(url + "/shrink", content=IMAGE).json()
        assert body["rgb"] == [list(RED), list(BLUE), list(RED), list(BLUE)]
        assert body["blur_levels"] >= 3  # the blur mixes the two colours at the border
        small = base64.b64decode(body["png"])
        assert small.startswith(b"\x89PNG")


def test_transformers_hf_model_folder_from_pipfile_lock(corpus: Corpus) -> None:
    """Pipfile.lock pins transformers; the model is a save_pretrained folder (config.json,
    model.safetensors, tokenizer.json) in its own layer; the answer matches what the
    saved model gave where it was made."""
    built = corpus("transformers-pipenv")
    assert_proven(built)
    model_files = layer_files(built.archive, built.layer("model")["digest"])
    assert {"app/model/config.json", "app/model/model.safetensors",
            "app/model/tokenizer.json"} <= model_files  # fmt: skip
    expected = json.loads((built.project / "expected.json").read_text())
    with serving(built, 8000, "/health") as url:
        assert httpx.get(url + "/health").json()["transformers"] == "5.18.0"
        body = httpx.post(url + "/classify", json={"text": expected["text"]}).json()
        assert body["input_ids"] == expected["input_ids"]
        assert body["label"] == expected["label"]
        assert body["logits"] == pytest.approx(expected["logits"], abs=1e-3)


def test_torchvision_on_the_cuda_stack_served_on_cpu(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch 2.14.1 + torchvision 0.29.1 with the CUDA 13 libraries on disk (zstd layers):
    torchvision's decoders and C++ operators work on a host without a GPU.

    Built with a cache of its own, in this test's folder: nothing else shares its ~10 GB
    of layers and trees, and they go when it passes (CI's disk is not ours to fill)."""
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))
    project = copy_project("torchvision-cuda", tmp_path / "torchvision-cuda")
    built = corpus.record(
        build_project(project, tmp_path / "torchvision-cuda.tar", "--compression", "zstd")
    )
    assert_proven(built)
    names = [layer["name"] for layer in built.report["layers"]]
    assert any(n.startswith("nvidia") for n in names), names
    with serving(built, 8000, "/health") as url:
        health = httpx.get(url + "/health").json()
        assert health["device"] == "cpu"
        assert health["torch"].startswith("2.14.1")
        assert health["torchvision"].startswith("0.29.1")
        assert health["cuda_build"].startswith("13.")
        body = httpx.post(url + "/classify", content=IMAGE).json()
        assert body["decoded"] == [3, 4, 8]
        assert body["pixel0"] == list(RED)
        assert body["classes"] == 4 and body["prob_sum"] == 1.0
        boxes = {
            "boxes": [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]],
            "scores": [0.9, 0.8, 0.7],
        }
        assert httpx.post(url + "/nms", json=boxes).json() == {"keep": [0, 2]}


@pytest.fixture(scope="module")
def tmp_writer(corpus: Corpus) -> Iterator[str]:
    built = corpus("tmp-writer")
    assert_proven(built)
    with serving(built, 8080, "/health") as url:
        yield url


def test_app_writes_to_tmp_under_read_only(tmp_writer: str) -> None:
    """No requirements at all (torch alone); a stdlib server writes scratch files to /tmp."""
    body = httpx.post(tmp_writer + "/scratch", json={"values": [1, 2, 3.5]}).json()
    assert body["sum"] == 6.5 and body["dir"] == "/tmp" and body["bytes"] > 0


def test_declared_writable_path_under_read_only(tmp_writer: str) -> None:
    """``writable = ["/var/lib/tmp-writer"]``: uid 1000 writes there under --read-only."""
    r = httpx.post(tmp_writer + "/state/run1", json={"values": [4, 5]})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/var/lib/tmp-writer/run1.pt"
    assert httpx.get(tmp_writer + "/state/run1").json() == {"values": [4, 5]}


# ---- issue 11: init on a seed-style project, then build and serve --------------------


def test_init_seed_project_then_build_and_serve(corpus: Corpus, tmp_path: Path) -> None:
    """The config is only what `torchslim init` wrote from the Dockerfile and requirements."""
    project = copy_project("seed", tmp_path / "seed")
    proc = torchslim("init", str(project))
    assert proc.returncode == 0, proc.stderr
    built = corpus.record(build_project(project, tmp_path / "seed.tar"))
    assert_proven(built)
    assert built.report["proof"]["entry"] == "app.main:app"
    assert layer_files(built.archive, built.layer("model")["digest"]) == {
        "app/weights/classifier.pt"
    }
    with serving(built, 8080, "/healthz") as url:
        r = httpx.post(url + "/predict", json={"inputs": [[1, 2, 3, 4], [4, 3, 2, 1]]})
        assert r.json() == {
            "scores": [[2.5, 3.0], [2.5, 0.0]],
            "labels": ["positive", "negative"],
        }


# ---- issue 22: framework shapes, each through `torchslim init` unchanged ------------


def initialized(corpus: Corpus, name: str, tmp_path: Path) -> Built:
    """``tests/projects/<name>`` with only what ``torchslim init`` wrote, built and proven."""
    project = copy_project(name, tmp_path / name)
    proc = torchslim("init", str(project))
    assert proc.returncode == 0, proc.stderr
    built = corpus.record(build_project(project, tmp_path / f"{name}.tar"))
    assert_proven(built)
    assert built.report["proof"]["served"], built.report["proof"]
    return built


def test_sentence_transformers_and_sklearn_under_gunicorn_from_a_wrapper_script(
    corpus: Corpus, tmp_path: Path
) -> None:
    """Issue 22: the Dockerfile's CMD is ``./start.sh``, whose last line execs
    ``gunicorn -w 2``; init writes that command, and MODEL_DIR under WORKDIR /srv as
    /app/model. sentence-transformers brings scipy >= 1.16 and scikit-learn: the image is
    proven, and it answers what the saved model answered where it was made, from a
    gunicorn master and two workers."""
    built = initialized(corpus, "sbert-gunicorn", tmp_path)
    text = (built.project / "torchslim.toml").read_text()
    assert 'cmd = ["gunicorn", "-w", "2", "-b", "0.0.0.0:8000"' in text, text
    assert 'MODEL_DIR = "/app/model"' in text, text
    expected = json.loads((built.project / "expected.json").read_text())
    ask = {"query": expected["query"], "docs": expected["docs"]}
    with serving(built, 8000, "/health") as url:
        health = httpx.get(url + "/health").json()
        assert (health["sentence_transformers"], health["sklearn"]) == ("6.3.0", "1.9.1")
        body = httpx.post(url + "/search", json=ask, timeout=60).json()
        assert body["best"] == expected["best"] and body["dimension"] == expected["dimension"]
        assert body["scores"] == pytest.approx(expected["scores"], abs=1e-3)
        name = f"corpus-{built.name}-{url.rsplit(':', 1)[1]}"
        # The literal is split so that this command's own cmdline does not match.
        count = (
            "import pathlib; print(sum(b'search.service' b':app' in p.read_bytes() "
            "for p in pathlib.Path('/proc').glob('[0-9]*/cmdline')))"
        )
        assert podman("exec", name, "python3", "-c", count).stdout.strip() == "3"


def test_gradio_space_from_its_readme_front_matter(corpus: Corpus, tmp_path: Path) -> None:
    """A Space: README front matter (sdk: gradio, app_file) gives cmd, port 7860 and
    GRADIO_SERVER_NAME=0.0.0.0; Gradio's launch asks for localhost by name, as in podman."""
    built = initialized(corpus, "gradio-space", tmp_path)
    with serving(built, 7860, "/") as url:
        r = httpx.post(url + "/gradio_api/call/score", json={"data": ["1 2 3"]})
        assert r.status_code == 200, r.text
        event = httpx.get(f"{url}/gradio_api/call/score/{r.json()['event_id']}", timeout=30)
        assert "event: complete" in event.text and 'data: ["14.0"]' in event.text, event.text


def test_streamlit_page(corpus: Corpus, tmp_path: Path) -> None:
    """``import streamlit``: init writes ``streamlit run`` with --server.address 0.0.0.0
    and headless, port 8501 and Streamlit's own health route."""
    built = initialized(corpus, "streamlit-page", tmp_path)
    with serving(built, 8501, "/_stcore/health") as url:
        assert httpx.get(url + "/_stcore/health").text == "ok"
        page = httpx.get(url + "/")
        assert page.status_code == 200 and "<noscript>" in page.text, page.text[:500]
    # Its health answers while no page has run: profile "used" cannot know what the page
    # needs (its census has no torch), so it refuses, in one line, and writes nothing.
    line = failed_build(built.project, tmp_path, "--profile", "used")
    assert 'profile "used": the served proof never ran the app\'s own code' in line, line


def test_conda_environment_yml_and_a_conda_activate_command(corpus: Corpus, tmp_path: Path) -> None:
    """environment.yml is the only environment: pytorch + cpuonly → torch CPU, numpy's conda
    pin, its pip: section; ``bash -c "source activate pt && exec python …"`` → the python."""
    built = initialized(corpus, "conda-env", tmp_path)
    with serving(built, 5000, "/ping") as url:
        assert httpx.get(url + "/ping").json() == {"numpy": "1.26.4", "torch": "2.13.0+cpu"}
        r = httpx.post(url + "/stats", json={"values": [3, 4]})
        assert r.json() == {"mean": 3.5, "norm": 5.0}


def test_batch_job_run_from_an_absolute_workdir_path(corpus: Corpus, tmp_path: Path) -> None:
    """No port: ``ENTRYPOINT ["python", "/workspace/run_inference.py"]`` under WORKDIR
    /workspace runs from the image's app folder and prints its answer."""
    project = copy_project("batch-workdir", tmp_path / "batch-workdir")
    assert torchslim("init", str(project)).returncode == 0
    assert '"/app/run_inference.py"' in (project / "torchslim.toml").read_text()
    built = corpus.record(build_project(project, tmp_path / "batch.tar"))
    assert_proven(built)
    loaded = podman("load", "-i", str(built.archive)).stdout
    image = re.search(r"Loaded image(?:\(s\))?: (\S+)", loaded)
    assert image, loaded
    try:
        out = podman("run", "--rm", "--read-only", "--tmpfs", "/tmp", image[1]).stdout
    finally:
        podman("rmi", "-f", image[1], check=False)
    assert json.loads(out) == {"scores": [4.5, 1.5, 2.0], "best": 0}


def test_litserve_service_whose_server_is_in_an_extra(corpus: Corpus, tmp_path: Path) -> None:
    """pyproject only; litserve is in the ``api`` extra, which init selects because
    server.py imports it; LitServe's /health and the port the script reads from PORT."""
    built = initialized(corpus, "litserve-extra", tmp_path)
    with serving(built, 8000, "/health") as url:
        r = httpx.post(url + "/predict", json={"input": [1, 2, 3]}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json() == {"output": [2.0, 1.0, -3.0]}


# ---- issue 10: bad input, one line each ----------------------------------------------

SEED_CONFIG = """\
name = "seed-bad"
torch = "2.13.0"
app = "app"
model = ["weights/classifier.pt"]
env = {{ MODEL_PATH = "{model_path}" }}
cmd = {cmd}
{extra}
"""
UVICORN = '["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8080"]'


def bad_seed(tmp_path: Path, *, model_path: str = "/app/weights/classifier.pt",
             cmd: str = UVICORN, extra: str = "") -> Path:  # fmt: skip
    project = copy_project("seed", tmp_path / "seed-bad")
    (project / "torchslim.toml").write_text(
        SEED_CONFIG.format(model_path=model_path, cmd=cmd, extra=extra)
    )
    return project


def test_entry_module_that_does_not_import(ts_cache: Path, tmp_path: Path) -> None:
    """A wrong MODEL_PATH: app.main raises at import. The line names the module, the
    exception and the file and line it came from."""
    project = bad_seed(tmp_path, model_path="/app/weights/missing.pt")
    line = failed_build(project, tmp_path)
    main = (project / "app" / "main.py").read_text().splitlines()
    lineno = next(i for i, text in enumerate(main, 1) if "torch.jit.load" in text)
    assert "app.main" in line, line
    assert "ValueError" in line and "missing.pt" in line, line
    assert f"(/app/app/main.py, line {lineno})" in line, line


def test_executable_missing_from_cmd(ts_cache: Path, tmp_path: Path) -> None:
    """cmd starts gunicorn, which no requirement installs."""
    cmd = '["gunicorn", "-k", "uvicorn.workers.UvicornWorker", "app.main:app"]'
    line = failed_build(bad_seed(tmp_path, cmd=cmd), tmp_path)
    assert "cmd gunicorn" in line and "PATH" in line, line


def test_failing_smoke_command(ts_cache: Path, tmp_path: Path) -> None:
    smoke = (
        'smoke = ["python3", "-c", "import torch, app.main as m; '
        "assert m.model(torch.ones(1, 4)).argmax() == 0, 'expected negative'\"]"
    )
    line = failed_build(bad_seed(tmp_path, extra=smoke), tmp_path)
    assert "smoke" in line and "expected negative" in line, line


def test_library_truly_missing_names_its_package(ts_cache: Path, tmp_path: Path) -> None:
    """opencv-python (not -headless) links libGL, which no wheel and no base package has:
    the proof names the library and the package that needs it."""
    project = copy_project("opencv-uv", tmp_path / "gl")
    (project / "requirements.txt").write_text(
        "fastapi==0.115.12\nuvicorn==0.34.3\nopencv-python==4.8.1.78\nnumpy==1.26.4\n"
    )
    with (project / "torchslim.toml").open("a") as f:
        f.write('requirements = ["requirements.txt"]\n')
    line = failed_build(project, tmp_path)
    assert "libGL.so.1" in line and "opencv-python" in line, line
