"""find_requirements on real lock files and written projects: which source, which items."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from support.projects import FIXTURES, fixture_project, seed_project, write_tree

from torchslim.errors import ConfigError
from torchslim.project import find_requirements


def test_pyproject_only_prod_extras_and_dev_groups(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pyproject.toml": """
[project]
name = "svc"
version = "1.0"
dependencies = ["fastapi>=0.110", "numpy<3; sys_platform == 'linux'"]
[project.optional-dependencies]
serve = ["uvicorn>=0.30", "svc[metrics]"]
metrics = ["prometheus-client"]
dev = ["pytest"]
[dependency-groups]
test = ["pytest-cov", {include-group = "lint"}]
lint = ["ruff"]
gpu = ["nvidia-ml-py"]
""",
        },
    )
    reqs = find_requirements(tmp_path, extras=["serve"])
    assert reqs.kind == "requirements"
    assert [(i.text, i.source) for i in reqs.prod] == [
        ("fastapi>=0.110", "pyproject.toml [project].dependencies"),
        ("numpy<3; sys_platform == 'linux'", "pyproject.toml [project].dependencies"),
        ("uvicorn>=0.30", "pyproject.toml [project.optional-dependencies].serve"),
        ("prometheus-client", "pyproject.toml [project.optional-dependencies].metrics"),
    ]
    # dev: dev-named groups and extras only (gpu is not dev), include-group expanded
    assert reqs.names("dev") == ["pytest-cov", "ruff", "pytest"]
    with pytest.raises(ConfigError, match=r"key `extras`: 'gpu' is not an extra .*metrics, serve"):
        find_requirements(tmp_path, extras=["gpu"])


def test_inline_and_file_entries_from_the_config(tmp_path: Path) -> None:
    write_tree(tmp_path, {"requirements.txt": "numpy==2.1.0\n", "extra.in": "pillow\n"})
    reqs = find_requirements(tmp_path, ["torch==2.13.0", "fastapi", "requirements.txt", "extra.in"])
    assert [(i.text, i.source) for i in reqs.prod] == [
        ("torch==2.13.0", "torchslim.toml requirements"),
        ("fastapi", "torchslim.toml requirements"),
        ("numpy==2.1.0", "requirements.txt:1"),
        ("pillow", "extra.in:1"),
    ]
    assert "requirements: 'fastapi' is an inline requirement" in reqs.notes
    assert "requirements: 'requirements.txt' is a file" in reqs.notes
    assert [p.name for p in reqs.requirement_files] == ["requirements.txt", "extra.in"]
    with pytest.raises(ConfigError, match=r"key `requirements`: file 'nope.txt' does not exist"):
        find_requirements(tmp_path, ["nope.txt"])


def test_uv_lock_is_pinned_with_hashes_markers_and_parents() -> None:
    reqs = find_requirements(FIXTURES / "uv", extras=["serve"])
    lock = tomllib.loads((FIXTURES / "uv" / "uv.lock").read_text())
    assert reqs.kind == "pinned" and reqs.source == "uv.lock"
    by = {(i.name, i.version): i for i in reqs.prod}
    # the fork: numpy at two versions, each with the marker uv chose it under
    assert by[("numpy", "2.4.6")].marker == "python_full_version < '3.12'"
    assert by[("numpy", "2.5.5")].marker == "python_full_version >= '3.12'"
    # the extra brought uvicorn, and uvicorn brought click
    assert by[("click", "8.5.1")].via == "uvicorn"
    assert ("click==8.5.1", "uv.lock ← uvicorn") in reqs.rows()
    locked = {p["name"]: p for p in lock["package"]}
    fastapi = by[("fastapi", locked["fastapi"]["version"])]
    assert fastapi.index == "https://pypi.org/simple"
    wheel_hashes = {w["hash"] for w in locked["fastapi"]["wheels"]}
    assert wheel_hashes | {locked["fastapi"]["sdist"]["hash"]} == set(fastapi.hashes)
    assert all(a.url and a.filename.startswith("fastapi-") for a in fastapi.artifacts)
    # dev groups are never followed: pytest and ruff are not prod
    assert {"pytest", "ruff"}.isdisjoint(reqs.names())
    assert reqs.names("dev") == ["pytest", "ruff"]
    assert "--hash=sha256:" in reqs.requirements_text().splitlines()[0]
    without = find_requirements(FIXTURES / "uv")
    assert {"uvicorn", "click"}.isdisjoint(without.names())


def test_stale_uv_lock_falls_back_to_pyproject(tmp_path: Path) -> None:
    project = fixture_project("uv", tmp_path)
    text = (project / "pyproject.toml").read_text().replace('"numpy<3"', '"numpy<2.5"')
    (project / "pyproject.toml").write_text(text)
    reqs = find_requirements(project)
    assert reqs.kind == "requirements"
    assert [i.text for i in reqs.prod] == ["fastapi>=0.110", "numpy<2.5"]
    assert any("uv.lock does not match" in n and "uv lock" in n for n in reqs.notes)


@pytest.mark.parametrize("name", ["poetry14", "poetry18", "poetry2"])
def test_poetry_locks_of_every_format(name: str) -> None:
    reqs = find_requirements(FIXTURES / name)
    assert reqs.kind == "pinned" and reqs.source == "poetry.lock"
    lock = tomllib.loads((FIXTURES / name / "poetry.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    # Poetry's own answer where the lock records one (category in 1.4, groups in 2.x)
    marked = {
        n
        for n, p in packages.items()
        if p.get("category") == "main" or "main" in p.get("groups", ())
    }
    if marked:
        assert set(reqs.names()) == marked
    assert "pytest" not in reqs.names() and reqs.names("dev") == ["pytest"]
    pydantic = next(i for i in reqs.prod if i.name == "pydantic")
    assert pydantic.version == packages["pydantic"]["version"]
    assert set(pydantic.hashes) == {f["hash"] for f in packages["pydantic"]["files"]}
    assert pydantic.index == "https://pypi.org/simple"  # the legacy source the lock names


def test_poetry_without_lock_converts_constraints(tmp_path: Path) -> None:
    project = fixture_project("poetry14", tmp_path)
    (project / "poetry.lock").unlink()
    reqs = find_requirements(project)
    assert [i.text for i in reqs.prod] == ["fastapi>=0.110", "pydantic>=2.5,<3.0"]
    assert reqs.source == "pyproject.toml [tool.poetry.dependencies]"


def test_pipfile_lock_fresh_and_stale(tmp_path: Path) -> None:
    reqs = find_requirements(FIXTURES / "pipenv")
    lock = json.loads((FIXTURES / "pipenv" / "Pipfile.lock").read_text())
    assert reqs.kind == "pinned" and sorted(reqs.names()) == sorted(lock["default"])
    requests = next(i for i in reqs.prod if i.name == "requests")
    assert requests.text.startswith("requests[socks]==")
    assert requests.marker == "sys_platform == 'linux'"
    assert set(requests.hashes) == set(lock["default"]["requests"]["hashes"])
    assert reqs.names("dev") == ["pytest"]
    assert not any("not used" in n for n in reqs.notes)
    project = fixture_project("pipenv", tmp_path)
    pipfile = (project / "Pipfile").read_text().replace('fastapi = ">=0.110"', 'fastapi = "*"')
    (project / "Pipfile").write_text(pipfile)
    stale = find_requirements(project)
    assert stale.kind == "requirements" and stale.source == "Pipfile [packages]"
    assert [i.text for i in stale.prod] == [
        "fastapi",
        "requests[socks] ; sys_platform == 'linux'",
    ]
    assert any("Pipfile.lock does not match Pipfile" in n for n in stale.notes)


def test_pylock_input_and_torchslims_own_lock_skipped(tmp_path: Path) -> None:
    reqs = find_requirements(FIXTURES / "pylock")
    assert reqs.kind == "pinned" and reqs.source == "pylock.toml"
    numpy = [i for i in reqs.prod if i.name == "numpy"]
    assert len(numpy) == 2 and all(i.marker and i.hashes for i in numpy)
    # a pylock.toml written by torchslim is the build's output: never an input
    write_tree(tmp_path, {"pylock.toml": 'lock-version = "1.0"\n[tool.torchslim.build]\n'})
    write_tree(tmp_path, {"requirements.txt": "fastapi\n"})
    assert find_requirements(tmp_path).source == "requirements.txt"
    with pytest.raises(ConfigError, match="torchslim's own lock"):
        find_requirements(tmp_path, ["pylock.toml"])


def test_requirement_files_prod_dev_and_unused(tmp_path: Path) -> None:
    seed_project(tmp_path)
    write_tree(tmp_path, {"requirements-gpu.txt": "cupy\n", "requirements.txt": "everything\n"})
    reqs = find_requirements(tmp_path)
    assert reqs.source == "requirements-prod.txt"  # explicit prod wins over requirements.txt
    assert [(i.text, i.source) for i in reqs.prod][0] == (
        "torch==2.13.0",
        "requirements-prod.txt:1",
    )
    # dev lines only: the -r include of the prod file is not counted again
    assert [(i.text, i.source) for i in reqs.dev] == [
        ("pytest==8.3.3", "requirements-dev.txt:2"),
        ("httpx", "requirements-dev.txt:3"),
    ]
    assert "requirements-gpu.txt: not used; name it in `requirements` to install it" in reqs.notes
    assert "requirements.txt: not used; name it in `requirements` to install it" in reqs.notes


def test_order_pyproject_before_requirements_and_nothing_found(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = ["fastapi"]\n',
            "requirements.txt": "flask\n",
        },
    )
    reqs = find_requirements(tmp_path)
    assert reqs.names() == ["fastapi"]
    assert any("also found, not used: requirements.txt" in n for n in reqs.notes)
    assert find_requirements(tmp_path, ["requirements.txt"]).names() == ["flask"]
    (tmp_path / "empty").mkdir()
    empty = find_requirements(tmp_path / "empty")
    assert empty.prod == () and "no requirements found" in empty.notes[-1]


def test_a_lock_cannot_be_mixed_and_extras_need_pyproject(tmp_path: Path) -> None:
    project = fixture_project("uv", tmp_path)
    write_tree(project, {"requirements.txt": "pillow\n"})
    with pytest.raises(ConfigError, match=r"the lock uv.lock cannot be combined"):
        find_requirements(project, ["uv.lock", "requirements.txt"])
    assert find_requirements(project, ["uv.lock"]).kind == "pinned"
    with pytest.raises(ConfigError, match=r"key `extras`: .*come from requirements.txt"):
        find_requirements(project, ["requirements.txt"], extras=["serve"])


def test_dependency_groups_named_in_the_config_are_prod(tmp_path: Path) -> None:
    """``groups``: PEP 735 groups installed with prod (issue 22); a named dev group is
    then prod, not dev; an unknown group is one line listing the project's groups."""
    write_tree(
        tmp_path,
        {
            "pyproject.toml": """
[project]
name = "svc"
version = "1.0"
dependencies = ["fastapi>=0.110"]
[dependency-groups]
serve = ["uvicorn>=0.30", {include-group = "metrics"}]
metrics = ["prometheus-client"]
test = ["pytest"]
""",
        },
    )
    reqs = find_requirements(tmp_path, groups=["serve"])
    assert [(i.text, i.source) for i in reqs.prod] == [
        ("fastapi>=0.110", "pyproject.toml [project].dependencies"),
        ("uvicorn>=0.30", "pyproject.toml [dependency-groups].serve"),
        ("prometheus-client", "pyproject.toml [dependency-groups].metrics"),
    ]
    assert reqs.names("dev") == ["pytest"]
    both = find_requirements(tmp_path, groups=["test"])
    assert "pytest" in both.names() and "pytest" not in both.names("dev")
    with pytest.raises(ConfigError, match=r"key `groups`: 'gpu' is not a .*metrics, serve, test"):
        find_requirements(tmp_path, groups=["gpu"])
    (tmp_path / "requirements.txt").write_text("numpy\n")
    with pytest.raises(ConfigError, match=r"key `groups`: .* come from requirements.txt"):
        find_requirements(tmp_path, ["requirements.txt"], groups=["serve"])


def test_uv_lock_follows_the_named_groups_only() -> None:
    reqs = find_requirements(FIXTURES / "uv", groups=["lint"])
    assert reqs.kind == "pinned" and "ruff" in reqs.names() and "pytest" not in reqs.names()
    assert reqs.names("dev") == ["pytest"]
    with pytest.raises(ConfigError, match=r"key `groups`: 'serve' is not a .*group.*dev, lint"):
        find_requirements(FIXTURES / "uv", groups=["serve"])
