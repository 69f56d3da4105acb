"""Facts read from real-shaped Dockerfiles: command, port, health, env, user, copies."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.projects import seed_project, write_tree

from torchslim.lint import LintError
from torchslim.lint.config import LintConfig
from torchslim.lint.engine import find_dockerfiles, lint_files
from torchslim.project import (
    DockerfileFacts,
    find_dockerfile,
    read_dockerfile_facts,
    read_procfile,
)

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "dockerfiles"


def facts_of(tmp_path: Path, text: str, name: str = "Dockerfile") -> DockerfileFacts:
    write_tree(tmp_path, {name: text})
    return read_dockerfile_facts(tmp_path / name)


def test_seed_multi_stage_dockerfile(tmp_path: Path) -> None:
    facts = read_dockerfile_facts(seed_project(tmp_path) / "Dockerfile")
    assert facts.cmd is not None and facts.cmd.where == "Dockerfile:28"
    assert facts.cmd.value == ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8080"]
    assert [(p.value, p.where) for p in facts.ports] == [(8080, "Dockerfile:26")]
    assert facts.health is not None and facts.health.value == "/healthz"
    assert facts.healthcheck is not None
    assert facts.healthcheck.value == {"interval": "15s", "timeout": "2s"}
    assert facts.python is not None and facts.python.value == "3.11"  # ARG default substituted
    assert facts.uid is not None and facts.uid.value == 10001  # USER svc ← useradd --uid
    assert facts.workdir is not None and facts.workdir.value == "/srv"
    env = dict(e.value for e in facts.env)
    assert env["MODEL_PATH"] == "/srv/weights/classifier.pt" and env["OMP_NUM_THREADS"] == "2"
    # every stage's installs; prod and dev requirement files both named, with their lines
    assert [(f.value, f.where) for f in facts.requirement_files] == [
        ("requirements-prod.txt", "Dockerfile:6"),
        ("requirements-dev.txt", "Dockerfile:11"),
    ]
    assert [m.value for m in facts.model_copies] == ["weights/classifier.pt"]
    # the final stage copies the app; the test stage's `COPY . .` is not the image
    assert [c.value for c in facts.code_copies] == [("app", "./app/")]


def test_entrypoint_and_cmd_combine_and_shell_forms(tmp_path: Path) -> None:
    facts = facts_of(tmp_path, 'FROM python:3.12-slim\nENTRYPOINT ["python"]\nCMD ["app.py"]\n')
    assert facts.cmd is not None and facts.cmd.value == ["python", "app.py"]
    assert facts.cmd.where == "Dockerfile:2 + 3"
    facts = facts_of(
        tmp_path, "FROM python:3.11\nENV PORT=9000\nCMD exec gunicorn -b :$PORT app:app\n"
    )
    assert facts.cmd is not None and facts.cmd.value == ["gunicorn", "-b", ":9000", "app:app"]
    assert not facts.cmd_needs_shell
    facts = facts_of(tmp_path, "FROM python:3.11\nCMD python migrate.py && python serve.py\n")
    assert facts.cmd_needs_shell and facts.cmd is not None and facts.cmd.value[0] == "/bin/sh"


def test_torch_pins_index_urls_inline_packages_and_bases(tmp_path: Path) -> None:
    facts = facts_of(
        tmp_path,
        "FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04\n"
        "ARG TORCH=2.13.0\n"
        "RUN pip3 install torch==${TORCH} --index-url https://download.pytorch.org/whl/cu126 \\\n"
        "    && pip3 install --no-cache-dir fastapi 'uvicorn[standard]>=0.30'\n"
        "COPY requirements-prod.txt /tmp/req.txt\n"
        "RUN pip3 install -r /tmp/req.txt\n"
        "USER 1001:1001\n"
        "VOLUME /data\n",
    )
    assert facts.torch is not None and facts.torch.value == "torch==2.13.0"
    assert facts.variant is not None and facts.variant.value == "cu126"
    assert facts.cuda is not None and facts.cuda.value == "12.4"
    assert facts.python is not None and facts.python.value == "3.10"  # ubuntu 22.04
    assert [f.value for f in facts.inline_requirements] == ["fastapi", "uvicorn[standard]>=0.30"]
    assert [f.value for f in facts.requirement_files] == ["requirements-prod.txt"]  # renamed copy
    assert facts.uid is not None and facts.uid.value == 1001
    assert [v.value for v in facts.volumes] == ["/data"]
    pt = facts_of(tmp_path, 'FROM pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime\nCMD ["python"]\n')
    assert pt.torch is not None and pt.torch.value == "torch==2.3.1"
    assert pt.variant is not None and pt.variant.value == "cu121"


def test_procfile_and_dockerfile_names(tmp_path: Path) -> None:
    write_tree(
        tmp_path, {"Procfile": "release: python migrate.py\nweb: uvicorn app:app --port $PORT\n"}
    )
    proc = read_procfile(tmp_path)
    assert proc is not None and (proc.value, proc.where) == (
        "uvicorn app:app --port $PORT",
        "Procfile:2",
    )
    assert find_dockerfile(tmp_path) is None
    write_tree(tmp_path, {"Containerfile": "FROM python:3.11\nUSER 1000\n"})
    assert find_dockerfile(tmp_path) == tmp_path / "Containerfile"
    write_tree(tmp_path, {"dockerfile": "FROM python:3.11\nUSER 1000\n"})
    assert find_dockerfiles(tmp_path) == [tmp_path / "dockerfile", tmp_path / "Containerfile"]
    # lint on the folder finds them too (it used to look only for Dockerfile*)
    result = lint_files([tmp_path], LintConfig(), "info")
    assert sorted(Path(f).name for f in result.files) == ["Containerfile", "dockerfile"]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.Dockerfile")), ids=lambda p: p.name)
def test_every_corpus_dockerfile_reads(path: Path) -> None:
    try:
        facts = read_dockerfile_facts(path)
    except LintError:
        pytest.skip("the corpus file is deliberately unparseable")
    assert facts.base


def test_lint_without_paths_finds_a_containerfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from torchslim.cli import main

    write_tree(tmp_path, {"Containerfile": "FROM pytorch/pytorch:latest\nUSER 1000\n"})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["lint", "--format", "json", "--fail-on", "none"])
    assert result.exit_code == 0, result.output
    assert "Containerfile" in result.output and "TS1" in result.output
