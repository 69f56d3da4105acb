"""init on serving frameworks' projects: a Gradio Space, a Streamlit app, LitServe with a
pyproject extra, BentoML, a PORT-reading script; each value says where it came from."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from support.projects import write_tree

from torchslim.config import ProjectConfig, load_config
from torchslim.errors import ConfigError
from torchslim.project import find_requirements, plan_init, write_config
from torchslim.project.init import InitPlan
from torchslim.project.serving import listen_everywhere

GRADIO_APP = """\
import gradio as gr


def greet(name: str) -> str:
    return "hello " + name


demo = gr.Interface(greet, "text", "text")
demo.launch()
"""

SPACE_README = """\
---
title: Greeter
emoji: 👋
sdk: gradio
sdk_version: 4.44.1
app_file: app.py
python_version: "3.13"
pinned: false
---

# Greeter
"""

LITSERVE_SERVER = """\
import os

import litserve as ls


class Echo(ls.LitAPI):
    def setup(self, device):
        self.model = lambda x: x

    def predict(self, x):
        return self.model(x)


if __name__ == "__main__":
    server = ls.LitServer(Echo())
    server.run(port=int(os.environ.get("PORT", 8000)))
"""


def init(root: Path) -> tuple[InitPlan, ProjectConfig, str]:
    plan = plan_init(root)
    written = write_config(plan)
    return plan, load_config(root), written.read_text()


def sources(plan: InitPlan) -> dict[str, str]:
    return {c.key: c.source for c in plan.choices if c.written}


def assert_every_value_has_a_place(plan: InitPlan) -> None:
    """Each written value names a file (and line) or the framework whose default it is."""
    for key, source in sources(plan).items():
        assert re.search(r"[\w.-]+:\d+|pyproject\.toml|folder name", source), (key, source)


def test_a_gradio_space(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "greeter",
        {"README.md": SPACE_README, "app.py": GRADIO_APP, "requirements.txt": "torch\ngradio\n"},
    )
    plan, cfg, text = init(root)
    assert cfg.cmd == ["python3", "app.py"]
    assert (cfg.port, cfg.health, cfg.python) == (7860, "/", "3.13")
    assert cfg.env == {"GRADIO_SERVER_PORT": "7860", "GRADIO_SERVER_NAME": "0.0.0.0"}
    assert 'cmd = ["python3", "app.py"]  # app_file in README.md:6 (sdk: gradio)' in text
    assert 'python = "3.13"  # python_version in README.md:7' in text
    assert "GRADIO_SERVER_NAME: Gradio listens on 127.0.0.1 unless told (app.py:1" in text
    assert_every_value_has_a_place(plan)


def test_a_space_whose_requirements_leave_out_its_sdk_is_told(tmp_path: Path) -> None:
    """Spaces install gradio (at sdk_version) themselves; an image has only what the
    requirements name, so init says which line to add."""
    files = {"README.md": SPACE_README, "app.py": GRADIO_APP, "requirements.txt": "torch\n"}
    plan = plan_init(write_tree(tmp_path / "bare", files))
    [note] = [n for n in plan.notes if "sdk: gradio" in n]
    assert note.startswith("README.md:4: sdk: gradio: the Spaces platform installs gradio==4.44.1")
    assert "add gradio==4.44.1 to the requirements" in note
    files["requirements.txt"] = "torch\nGradio>=4\n"
    plan = plan_init(write_tree(tmp_path / "listed", files))
    assert not [n for n in plan.notes if "sdk: gradio" in n]


def test_a_gradio_launch_names_its_port_and_a_docker_space_its_app_port(tmp_path: Path) -> None:
    app = GRADIO_APP.replace("demo.launch()", "demo.launch(server_port=7000)")
    root = write_tree(tmp_path / "g", {"app.py": app, "requirements.txt": "gradio\n"})
    plan = plan_init(root)  # no README: the top-level launch() is the entry
    assert plan.get("cmd") == ["python3", "app.py"] and plan.get("port") == 7000
    assert plan.get("env") == {"GRADIO_SERVER_NAME": "0.0.0.0"}
    assert sources(plan)["port"] == "app.py:9 launch(server_port=7000)"
    docker = write_tree(
        tmp_path / "d",
        {
            "README.md": "---\nsdk: docker\napp_port: 8080\n---\n",
            "Dockerfile": 'FROM python:3.12\nCOPY . .\nCMD ["gunicorn", "main:app"]\n',
            "main.py": "from flask import Flask\napp = Flask(__name__)\n",
            "requirements.txt": "flask\ngunicorn\n",
        },
    )
    plan = plan_init(docker)
    assert plan.get("cmd") == ["gunicorn", "main:app", "--bind", "0.0.0.0:8080"]
    assert any("gunicorn listens on 127.0.0.1 by default" in n for n in plan.notes)


def test_a_streamlit_app(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "page",
        {
            "streamlit_app.py": 'import streamlit as st\n\nst.title("digits")\n',
            "requirements.txt": "torch\nstreamlit\n",
        },
    )
    plan, cfg, text = init(root)
    assert cfg.cmd == [
        "streamlit", "run", "streamlit_app.py", "--server.address", "0.0.0.0",
        "--server.port", "8501", "--server.headless", "true",
    ]  # fmt: skip
    assert (cfg.port, cfg.health) == (8501, "/_stcore/health")
    assert "# guessed from streamlit_app.py:1 imports streamlit, changed (note below)" in text
    assert any("init added --server.address 0.0.0.0" in n for n in plan.notes)
    assert_every_value_has_a_place(plan)


def test_a_streamlit_command_in_the_readme_and_a_space(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "ui",
        {
            "README.md": "# UI\n\nRun it:\n\n    streamlit run ui/page.py --server.port 9000\n",
            "ui/page.py": "import streamlit as st\n",
            "requirements.txt": "streamlit\n",
        },
    )
    plan = plan_init(root)
    assert plan.get("cmd")[:3] == ["streamlit", "run", "ui/page.py"]
    assert plan.get("port") == 8501 and sources(plan)["cmd"].startswith("guessed from README.md:5")
    space = write_tree(
        tmp_path / "space",
        {
            "README.md": "---\nsdk: streamlit\napp_file: src/Home.py\n---\n",
            "src/Home.py": "import streamlit as st\n",
            "requirements.txt": "streamlit\n",
        },
    )
    plan = plan_init(space)
    assert plan.get("cmd")[:3] == ["streamlit", "run", "src/Home.py"]
    assert sources(plan)["health"] == (
        "Streamlit's health route (app_file in README.md:3 (sdk: streamlit))"
    )


def test_a_litserve_service_whose_server_is_in_an_extra(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "lit",
        {
            "pyproject.toml": '[project]\nname = "lit"\nversion = "0.1.0"\n'
            'dependencies = ["torch==2.13.0"]\n\n[project.optional-dependencies]\n'
            'api = ["litserve>=0.2"]\ndev = ["pytest"]\n',
            "server.py": LITSERVE_SERVER,
        },
    )
    plan, cfg, text = init(root)
    assert cfg.cmd == ["python3", "server.py"] and cfg.extras == ["api"]
    assert (cfg.port, cfg.health, cfg.env) == (8000, "/health", {"PORT": "8000"})
    assert (
        'extras = ["api"]  # server.py:3 imports litserve, in [project.optional-dependencies].api'
        in text
    )
    assert "port = 8000  # server.py:16 reads PORT (default 8000)" in text
    assert any(n.startswith("extras = ['api']: server.py:3 imports litserve") for n in plan.notes)
    reqs = find_requirements(cfg.root, cfg.requirements, cfg.extras)
    assert "litserve" in reqs.names()
    assert_every_value_has_a_place(plan)


def test_a_dependency_group_that_holds_what_the_entry_imports_is_selected(
    tmp_path: Path,
) -> None:
    """Issue 22: no extra holds litserve, a PEP 735 group does: init selects the group
    (``groups``), says where from, and the build's requirements then have it."""
    root = write_tree(
        tmp_path / "grp",
        {
            "pyproject.toml": '[project]\nname = "grp"\nversion = "0.1.0"\n'
            'dependencies = ["torch"]\n[dependency-groups]\nserve = ["litserve"]\n'
            'dev = ["pytest"]\n',
            "server.py": LITSERVE_SERVER.replace('int(os.environ.get("PORT", 8000))', "8123"),
        },
    )
    plan, cfg, text = init(root)
    assert plan.get("extras") is None and cfg.groups == ["serve"] and cfg.port == 8123
    assert sources(plan)["port"] == "server.py:16 run(port=8123)"
    assert (
        'groups = ["serve"]  # server.py:3 imports litserve, in [dependency-groups].serve' in text
    )
    reqs = find_requirements(cfg.root, cfg.requirements, cfg.extras, groups=cfg.groups)
    assert "litserve" in reqs.names() and reqs.names("dev") == ["pytest"]
    assert_every_value_has_a_place(plan)


def test_a_bentoml_service(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "bento",
        {
            "service.py": "import bentoml\n\n\n@bentoml.service(resources={'cpu': '1'})\n"
            "class Summarizer:\n    @bentoml.api\n    def run(self, text: str) -> str:\n"
            "        return text\n",
            "requirements.txt": "torch\nbentoml\n",
        },
    )
    plan, cfg, text = init(root)
    assert cfg.cmd == ["bentoml", "serve", "service:Summarizer"]
    assert (cfg.port, cfg.health) == (3000, "/healthz")
    assert "# guessed from service.py:4" in text
    assert_every_value_has_a_place(plan)
    (root / "bentofile.yaml").write_text('service: "service:Summarizer"\ninclude: ["*.py"]\n')
    assert sources(plan_init(root))["cmd"] == "guessed from bentofile.yaml:1"


def test_a_script_that_reads_port(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "plain",
        {
            "serve.py": "import os\nfrom http.server import HTTPServer, BaseHTTPRequestHandler\n\n"
            'if __name__ == "__main__":\n    port = int(os.getenv("PORT", "9000"))\n'
            '    HTTPServer(("0.0.0.0", port), BaseHTTPRequestHandler).serve_forever()\n',
            "requirements.txt": "torch\n",
        },
    )
    plan, cfg, text = init(root)
    assert cfg.cmd == ["python3", "serve.py"]
    assert (cfg.port, cfg.env) == (9000, {"PORT": "9000"})
    assert (
        "port = 9000  # server.py" not in text and "# serve.py:5 reads PORT (default 9000)" in text
    )
    assert_every_value_has_a_place(plan)
    # EXPOSE decides the port, and PORT is set to it
    (root / "Dockerfile").write_text('FROM python:3.11\nEXPOSE 8080\nCMD ["python", "serve.py"]\n')
    plan = plan_init(root)
    assert (plan.get("port"), plan.get("env")) == (8080, {"PORT": "8080"})


def test_ray_serve_and_torchserve(tmp_path: Path) -> None:
    ray = write_tree(
        tmp_path / "ray",
        {
            "Dockerfile": 'FROM python:3.11\nCOPY . .\nCMD ["serve", "run", "app:deployment"]\n',
            "app.py": "from ray import serve\n",
            "requirements.txt": "ray[serve]\n",
        },
    )
    plan = plan_init(ray)
    assert (plan.get("port"), plan.get("health")) == (8000, "/-/healthz")
    assert plan.get("env") == {"RAY_SERVE_DEFAULT_HTTP_HOST": "0.0.0.0"}
    ts = write_tree(
        tmp_path / "ts",
        {
            "Dockerfile": "FROM pytorch/torchserve:latest\nCOPY . .\n"
            'CMD ["torchserve", "--start", "--model-store", "model_store"]\n',
            "handler.py": "from ts.torch_handler.base_handler import BaseHandler\n",
        },
    )
    with pytest.raises(ConfigError, match=r"^Dockerfile:3: TorchServe is not supported: .*Java"):
        plan_init(ts)
    (ts / "Dockerfile").unlink()
    with pytest.raises(ConfigError, match=r"^handler.py is a TorchServe handler: TorchServe"):
        plan_init(ts)


@pytest.mark.parametrize(
    ("cmd", "want"),
    [
        (["uvicorn", "m:app"], ["uvicorn", "m:app", "--host", "0.0.0.0"]),
        (["uvicorn", "m:app", "--host", "127.0.0.1"], ["uvicorn", "m:app", "--host", "0.0.0.0"]),
        (["uvicorn", "m:app", "--host=::"], None),
        (["gunicorn", "-w", "2", "m:app"],
         ["gunicorn", "-w", "2", "m:app", "--bind", "0.0.0.0:8000"]),
        (["gunicorn", "-b", "127.0.0.1:9000", "m:app"],
         ["gunicorn", "-b", "0.0.0.0:9000", "m:app"]),
        (["gunicorn", "--bind=localhost:9000", "m:app"],
         ["gunicorn", "--bind=0.0.0.0:9000", "m:app"]),
        (["gunicorn", "-c", "conf.py", "m:app"], None),
        (["python3", "-m", "flask", "--app", "m", "run"],
         ["python3", "-m", "flask", "--app", "m", "run", "--host", "0.0.0.0"]),
        (["flask", "routes"], None),
        (["python3", "serve.py"], None),
    ],
)  # fmt: skip
def test_servers_listen_everywhere(tmp_path: Path, cmd: list[str], want: list[str] | None) -> None:
    new, note = listen_everywhere(cmd, 8000, {}, tmp_path)
    assert new == (want or cmd)
    assert bool(note) == (want is not None)
    if note:
        assert "which nothing outside the container reaches; init wrote" in note


def test_a_gunicorn_config_file_or_env_decides_the_bind(tmp_path: Path) -> None:
    (tmp_path / "gunicorn.conf.py").write_text('bind = "0.0.0.0:8000"\n')
    assert listen_everywhere(["gunicorn", "m:app"], 8000, {}, tmp_path)[1] == ""
    assert listen_everywhere(["uvicorn", "m:app"], 8000, {"UVICORN_HOST": "::"}, tmp_path)[1] == ""


def test_front_matter_paths_stay_in_the_project(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "s",
        {
            "README.md": "---\nsdk: gradio\napp_file: ../outside.py\n---\n",
            "main.py": "from fastapi import FastAPI\napp = FastAPI()\n",
            "requirements.txt": "fastapi\n",
        },
    )
    (tmp_path / "outside.py").write_text("import gradio\n")
    plan = plan_init(root)
    assert plan.get("cmd")[:4] == ["python3", "-m", "uvicorn", "main:app"]
    assert any(n.startswith("README.md:3: key `app_file`") for n in plan.notes)


def test_written_config_loads(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "lit",
        {"server.py": LITSERVE_SERVER, "requirements.txt": "litserve\n"},
    )
    _, cfg, _ = init(root)
    assert tomllib.loads((root / "torchslim.toml").read_text())["env"] == {"PORT": "8000"}
    assert cfg.extras == []  # requirements.txt holds litserve: no extra to choose


def test_an_entry_linked_out_of_the_project_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "secret.py").write_text('import gradio\nPORT = os.environ["PORT"]\n')
    root = write_tree(tmp_path / "p", {"requirements.txt": "torch\n"})
    (root / "app.py").symlink_to(tmp_path / "secret.py")
    (root / "bentofile.yaml").symlink_to(tmp_path / "secret.py")
    plan = plan_init(root, cmd="python3 app.py")
    assert plan.get("env") is None and plan.get("port") is None and plan.get("health") is None
