"""torchslim init end to end: facts → choices → a config the build loads, files selected."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.projects import fixture_project, seed_project, write_tree

from torchslim.cli import main
from torchslim.config import ProjectConfig, load_config
from torchslim.errors import ConfigError, OutputExistsError
from torchslim.project import (
    check_torch_pin,
    expand_model_entries,
    find_requirements,
    guess,
    plan_init,
    select_app_files,
    write_config,
)
from torchslim.project.init import normalise_name
from torchslim.project.torchpin import newest_known_torch

FASTAPI_MAIN = """\
from fastapi import FastAPI

api = FastAPI(title="svc")


@api.get("/health")
def health() -> dict[str, str]:
    return {"ok": "yes"}
"""


def init(root: Path, **kw: object) -> ProjectConfig:
    plan = plan_init(root, cmd=kw.pop("cmd", None))  # type: ignore[arg-type]
    write_config(plan, **kw)  # type: ignore[arg-type]
    return load_config(root)


def written(root: Path, name: str = "torchslim.toml") -> dict[str, object]:
    return tomllib.loads((root / name).read_text())


def assert_minimal(data: dict[str, object]) -> None:
    """Nothing is written that the default already says."""
    fields = ProjectConfig.model_fields
    for key, value in data.items():
        field = fields[key.replace("-", "_")]
        assert field.is_required() or value != field.default, key


def test_seed_project(tmp_path: Path) -> None:
    root = seed_project(tmp_path / "Seed_Service")
    cfg = init(root)
    data = written(root)
    assert_minimal(data)
    assert data == {
        "name": "seed_service",
        "torch": "2.13.0",
        "app": "app",
        "model": ["weights/classifier.pt"],
        "cmd": ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8080"],
        "port": 8080,
        "health": "/healthz",
        "healthcheck": {"interval": "15s", "timeout": "2s"},
        "user": 10001,
        "env": {"MODEL_PATH": "/app/weights/classifier.pt", "OMP_NUM_THREADS": "2"},
    }
    text = (root / "torchslim.toml").read_text()
    assert 'torch = "2.13.0"  # torch==2.13.0 in requirements-prod.txt:1' in text
    assert "port = 8080  # Dockerfile:26" in text
    # what the build will do with it
    models = expand_model_entries(cfg.root, cfg.model)
    assert [dest for _, dest in models] == ["/app/weights/classifier.pt"]
    selection = select_app_files(
        cfg.root, cfg.app, cfg.include, cfg.exclude, skip=[p for p, _ in models]
    )
    assert [f.image_path for f in selection.files] == ["/app/app/__init__.py", "/app/app/main.py"]
    selection.check_secrets()  # .env lies outside app: not shipped, no error
    reqs = find_requirements(cfg.root, cfg.requirements, cfg.extras, cfg.dev_requirements)
    assert reqs.source == "requirements-prod.txt" and reqs.names("dev") == ["pytest", "httpx"]
    check_torch_pin(reqs, cfg.torch, cfg.variant)
    assert cfg.version == "0.1.0" and cfg.python == "3.11" and cfg.variant == "cpu"


def test_flat_repo_without_dockerfile(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "flat",
        {
            "main.py": FASTAPI_MAIN,
            "requirements.txt": "torch==2.14.1+cu130\nfastapi\nuvicorn\n",
            "models/tiny-bert/config.json": "{}",
            "models/tiny-bert/model.safetensors": b"\0" * 64,
            ".env": "SECRET=1\n",
            "venv/bin/python": "",
        },
    )
    cfg = init(root)
    data = written(root)
    assert_minimal(data)
    assert data["cmd"] == [
        "python3", "-m", "uvicorn", "main:api", "--host", "0.0.0.0", "--port", "8000",
    ]  # fmt: skip
    assert (data["torch"], data["variant"]) == ("2.14.1", "cu130")
    assert (data["port"], data["health"]) == (8000, "/health")
    assert data["model"] == ["models/tiny-bert"] and data["exclude"] == [".env"]
    assert "app" not in data  # the flat repo's app is "." — the default
    text = (root / "torchslim.toml").read_text()
    assert "# guessed from main.py:3" in text and "# route in main.py:6" in text
    models = expand_model_entries(cfg.root, cfg.model)
    selection = select_app_files(cfg.root, cfg.app, cfg.include, cfg.exclude,
                                 skip=[p for p, _ in models])  # fmt: skip
    assert [f.rel for f in selection.files] == ["main.py", "requirements.txt"]
    selection.check_secrets()


@pytest.mark.parametrize("dockerfile", [True, False])
def test_src_layout_goes_on_pythonpath(tmp_path: Path, dockerfile: bool) -> None:
    files: dict[str, str | bytes] = {
        "pyproject.toml": '[project]\nname = "srcsvc"\nversion = "0.3.0"\n'
        'dependencies = ["torch==2.13.0", "fastapi", "uvicorn"]\n',
        "src/srcsvc/__init__.py": "",
        "src/srcsvc/main.py": FASTAPI_MAIN,
        "tests/test_main.py": "",
    }
    if dockerfile:  # the usual Dockerfile for it: copy everything, `pip install .`
        files["Dockerfile"] = (
            "FROM python:3.11-slim\nWORKDIR /srv\nCOPY . .\nRUN pip install .\n"
            'CMD ["uvicorn", "srcsvc.main:api", "--host", "0.0.0.0", "--port", "8080"]\n'
        )
    root = write_tree(tmp_path / "srcsvc", files)
    init(root)
    data = written(root)
    assert data["env"] == {"PYTHONPATH": "/app/src"}
    assert data.get("app", ".") == ("." if dockerfile else "src")
    assert "srcsvc is in src/ (src layout)" in (root / "torchslim.toml").read_text()
    # a flat layout needs nothing: the working directory is on sys.path
    flat = write_tree(tmp_path / "flat", {"main.py": FASTAPI_MAIN, "requirements.txt": "torch\n"})
    init(flat)
    assert "env" not in written(flat)


def test_a_project_script_in_the_dockerfile_runs_with_python(tmp_path: Path) -> None:
    """CMD ["serve"] names `[project.scripts]`, which `pip install .` put on PATH."""
    root = write_tree(
        tmp_path / "svc",
        {
            "pyproject.toml": '[project]\nname = "svc"\nversion = "1"\n'
            'dependencies = ["torch==2.13.0", "fastapi", "uvicorn"]\n'
            '[project.scripts]\nserve = "svc.cli:main"\n',
            "src/svc/__init__.py": "",
            "src/svc/cli.py": "def main() -> None:\n    pass\n",
            "Dockerfile": "FROM python:3.11-slim\nCOPY . .\nRUN pip install .\n"
            'CMD ["serve", "--port", "9000"]\n',
        },
    )
    init(root)
    data = written(root)
    code = "import sys; from svc.cli import main; sys.exit(main())"
    assert data["cmd"] == ["python3", "-c", code, "--port", "9000"]
    assert data["env"] == {"PYTHONPATH": "/app/src"}  # svc is in src/


def test_a_copied_weights_folder_is_a_model_not_the_app(tmp_path: Path) -> None:
    """`COPY serve.py .` + `COPY weights/ weights/`: the app is the project's code at /app,
    the weights folder is `model` (same paths in the image as the Dockerfile's)."""
    root = write_tree(
        tmp_path / "svc",
        {
            "requirements.txt": "torch==2.13.0\nuvicorn\n",
            "serve.py": "if __name__ == '__main__':\n    pass\n",
            "weights/net.pt": b"\0" * 32,
            "Dockerfile": "FROM python:3.11-slim\nWORKDIR /code\nCOPY serve.py .\n"
            "COPY weights/ weights/\n"
            'ENTRYPOINT ["python", "serve.py"]\nCMD ["--port", "9000"]\n',
        },
    )
    init(root)
    data = written(root)
    assert "app" not in data and "files" not in data
    assert data["model"] == ["weights/net.pt"]
    assert data["cmd"] == ["python", "serve.py", "--port", "9000"]


def test_models_downloaded_from_the_hub_at_start_are_noted(tmp_path: Path) -> None:
    main = (
        "from transformers import AutoModel, AutoTokenizer, pipeline\n"
        "from huggingface_hub import hf_hub_download\n"
        'tok = AutoTokenizer.from_pretrained("bert-base-uncased")\n'
        'clf = pipeline("sentiment-analysis", model="org/sst2-model")\n'
        'local = AutoModel.from_pretrained("models/tiny-bert")\n'
        'cfg = hf_hub_download(repo_id="org/cfg", filename="c.json")\n'
        "other = AutoModel.from_pretrained(MODEL_DIR)\n"
    )
    root = write_tree(
        tmp_path / "svc",
        {
            "requirements.txt": "torch==2.13.0\ntransformers\n",
            "serve.py": main + "if __name__ == '__main__':\n    pass\n",
            "models/tiny-bert/config.json": "{}",
            "models/tiny-bert/model.safetensors": b"\0" * 8,
        },
    )
    plan = plan_init(root)
    hub = [n for n in plan.notes if "Hugging Face Hub" in n]
    assert [n.split(":")[:2] for n in hub] == [
        ["serve.py", "3"],
        ["serve.py", "4"],
        ["serve.py", "6"],
    ]
    assert "bert-base-uncased is downloaded" in hub[0]
    assert "`huggingface-cli download org/sst2-model --local-dir models/sst2-model`" in hub[1]
    assert not any("tiny-bert" in n or "MODEL_DIR" in n for n in hub)


def test_torch_pinned_only_in_a_requirements_file_that_is_not_the_source(tmp_path: Path) -> None:
    """pyproject.toml leaves torch open; requirements.txt (`-e .` + the pin) is the recipe."""
    root = write_tree(
        tmp_path / "svc",
        {
            "pyproject.toml": '[project]\nname = "svc"\nversion = "1"\n'
            'dependencies = ["fastapi", "uvicorn"]\n',
            "requirements.txt": "-e .\ntorch==2.13.0\n",
            "svc/__init__.py": "",
            "svc/main.py": FASTAPI_MAIN,
        },
    )
    init(root)
    text = (root / "torchslim.toml").read_text()
    assert 'torch = "2.13.0"  # torch==2.13.0 in requirements.txt:2' in text
    assert 'app = "svc"  # the folder of svc/main.py' in text


def test_a_command_from_the_dockerfiles_virtualenv_runs_from_path(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "svc",
        {
            "requirements.txt": "torch==2.13.0\nfastapi\nuvicorn\n",
            "app/__init__.py": "",
            "app/main.py": FASTAPI_MAIN,
            "Dockerfile": "FROM python:3.11 AS builder\nRUN python -m venv /opt/venv\n"
            "FROM python:3.11-slim\nCOPY --from=builder /opt/venv /opt/venv\n"
            'ENV PATH="/opt/venv/bin:$PATH"\nWORKDIR /srv\nCOPY app/ ./app/\n'
            'CMD ["/opt/venv/bin/uvicorn", "app.main:api", "--port", "8080"]\n',
        },
    )
    plan = plan_init(root)
    # uvicorn listens on 127.0.0.1 unless told: init adds --host 0.0.0.0 (note in test_serving)
    assert plan.get("cmd") == ["uvicorn", "app.main:api", "--port", "8080", "--host", "0.0.0.0"]
    assert any("/opt/venv/bin/uvicorn is in the Dockerfile's environment" in n for n in plan.notes)
    for env in ("/venv", "/app/.venv", "/root/.local", "/opt/conda", "/home/u/miniconda3"):
        assert guess.runnable_cmd([f"{env}/bin/python", "a.py"], {})[0] == ["python", "a.py"]
    for kept in (["/usr/local/bin/uvicorn", "x:app"], ["/srv/bin/run.sh"], ["python3", "a.py"]):
        assert guess.runnable_cmd(kept, {}) == (kept, "")


def test_torchvision_and_torch_hub_downloads_at_start_are_noted(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "svc",
        {
            "requirements.txt": "torch==2.13.0\ntorchvision\n",
            "a.py": "import torchvision\n\nnet = torchvision.models.resnet18(\n"
            "    weights=torchvision.models.ResNet18_Weights.DEFAULT)\n",
            "b.py": "import torch\nm = torch.hub.load('pytorch/vision', 'resnet18')\n",
            "c.py": "from torchvision.models import resnet18\nnet = resnet18(pretrained=True)\n",
            "d.py": "import torchvision\nnet = torchvision.models.resnet18(weights=None)\n",
            "main.py": "if __name__ == '__main__':\n    pass\n",
        },
    )
    notes = [n for n in plan_init(root).notes if "TORCH_HOME" in n]
    assert [n.split(": ")[0] for n in notes] == ["a.py:4", "b.py:2", "c.py:2"]
    assert 'env TORCH_HOME = "/app/models/torch"' in notes[0]


def test_pyproject_mode_appends_and_keeps_the_users_text(tmp_path: Path) -> None:
    root = fixture_project("uv", tmp_path)
    write_tree(root, {"service/main.py": FASTAPI_MAIN, "service/__init__.py": ""})
    before = (root / "pyproject.toml").read_text()
    cfg = init(root, pyproject=True)
    after = (root / "pyproject.toml").read_text()
    assert after.startswith(before) and "\n[tool.torchslim]\n" in after[len(before) :]
    assert not (root / "torchslim.toml").exists()
    assert (cfg.name, cfg.version, cfg.app) == ("uv-svc", "0.3.0", "service")
    assert cfg.cmd[3] == "service.main:api" and cfg.torch == newest_known_torch()
    plan = plan_init(root)
    with pytest.raises(OutputExistsError, match=r"already has \[tool.torchslim\]"):
        write_config(plan, pyproject=True)
    with pytest.raises(OutputExistsError, match=r"already has \[tool.torchslim\]"):
        write_config(plan)  # a torchslim.toml would shadow it
    assert (root / "pyproject.toml").read_text() == after


def test_refuses_to_overwrite_and_needs_a_command(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "svc", {"torchslim.toml": "name = 'mine'\n", "lib.py": ""})
    with pytest.raises(ConfigError, match=r"cannot tell how the service starts.*--cmd"):
        plan_init(root)
    plan = plan_init(root, cmd="python3 lib.py")
    with pytest.raises(OutputExistsError, match="torchslim.toml: already exists"):
        write_config(plan)
    assert (root / "torchslim.toml").read_text() == "name = 'mine'\n"


def test_procfile_port_and_gunicorn(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "p",
        {
            "Procfile": "web: gunicorn app:app --bind 0.0.0.0:$PORT --workers 2\n",
            "app.py": "from flask import Flask\napp = Flask(__name__)\n",
            "requirements.txt": "flask\ngunicorn\n--extra-index-url https://download.pytorch.org/whl/cu128\ntorch==2.13.0\n",
        },
    )
    plan = plan_init(root)
    assert plan.get("cmd") == ["gunicorn", "app:app", "--bind", "0.0.0.0:8000", "--workers", "2"]
    assert plan.get("port") == 8000 and plan.get("variant") == "cu128"
    assert any("$PORT is 8000" in n for n in plan.notes)


def test_python_and_cuda_base_images(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "g",
        {
            "Dockerfile": 'FROM python:3.12-slim\nCMD ["python", "serve.py"]\n',
            "serve.py": "",
            "requirements.txt": "torch==2.13.0\n",
        },
    )
    plan = plan_init(root)
    assert plan.get("python") == "3.13"
    assert any("Python 3.12" in n and "chose 3.13" in n for n in plan.notes)
    write_tree(
        root,
        {
            "Dockerfile": "FROM nvidia/cuda:12.9.1-runtime-ubuntu24.04\n"
            'CMD ["python3", "serve.py"]\n'
        },
    )
    plan = plan_init(root)
    assert plan.get("variant") == "cu128"  # the newest CUDA 12 build of torch 2.13 not above 12.9


def test_cli_prints_every_choice_with_its_source(tmp_path: Path) -> None:
    root = seed_project(tmp_path / "seed")
    runner = CliRunner()
    result = runner.invoke(main, ["init", str(root)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"wrote {root / 'torchslim.toml'}" in out
    assert 'torch = "2.13.0"  ← torch==2.13.0 in requirements-prod.txt:1' in out
    assert "requirements: default (found requirements-prod.txt)" in out
    assert "note: Dockerfile:16: MODEL_PATH=/srv/weights/classifier.pt is under WORKDIR /srv" in out
    again = runner.invoke(main, ["init", str(root)])
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.parametrize(
    ("raw", "name"),
    [("My_Service", "my_service"), ("svc v2!", "svc-v2"), ("--", "service"), ("_x", "x")],
)
def test_names_fit_the_config_pattern(raw: str, name: str) -> None:
    assert normalise_name(raw) == name


def test_an_unreadable_dockerfile_is_a_note_not_a_failure(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "u",
        {"Dockerfile": "FROM python:3.11\nRUNN pip install x\n", "main.py": FASTAPI_MAIN},
    )
    plan = plan_init(root)
    assert plan.get("cmd")[3] == "main:api"
    assert any(n.startswith("Dockerfile not read:") and "RUNN" in n for n in plan.notes)
