"""pyproject.toml tables: Poetry's constraint syntax, PEP 735 include-group, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from support.projects import write_tree

from torchslim.errors import ConfigError
from torchslim.project.pyproject import (
    dev_items,
    poetry_prod,
    poetry_specifier,
    read_pyproject,
    script_command,
)


@pytest.mark.parametrize(
    ("poetry", "pep440"),
    [
        ("^1.2.3", ">=1.2.3,<2.0.0"),
        ("^0.2.3", ">=0.2.3,<0.3.0"),
        ("^0.0.3", ">=0.0.3,<0.0.4"),
        ("^2", ">=2,<3"),
        ("~1.2.3", ">=1.2.3,<1.3.0"),
        ("~1.2", ">=1.2,<1.3"),
        ("~=1.4", "~=1.4"),
        ("1.2.*", "==1.2.*"),
        ("2.0.1", "==2.0.1"),
        (">=1.0, <2.0", ">=1.0,<2.0"),
        (">=1.0 <2.0", ">=1.0,<2.0"),
        ("*", ""),
    ],
)
def test_poetry_specifiers_mean_what_poetry_means(poetry: str, pep440: str) -> None:
    assert poetry_specifier(poetry) == pep440
    SpecifierSet(pep440)  # and it is valid PEP 440


def test_poetry_or_constraint_is_refused(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pyproject.toml": "[tool.poetry.dependencies]\n"
            'python = "^3.11"\nnumpy = "^1.0 || ^2.0"\n'
        },
    )
    with pytest.raises(ConfigError, match=r"numpy: constraint .*`\|\|`.*run `poetry lock`"):
        poetry_prod(tmp_path, read_pyproject(tmp_path) or {})


def test_poetry_tables_git_extras_markers_and_optional(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pyproject.toml": """
[tool.poetry.dependencies]
python = "^3.11"
uvicorn = { version = "^0.30", extras = ["standard"], markers = "sys_platform == 'linux'" }
mylib = { git = "https://github.com/example/mylib.git", tag = "v1.0" }
onnx = { version = "*", optional = true }
[tool.poetry.dev-dependencies]
black = "*"
""",
        },
    )
    data = read_pyproject(tmp_path) or {}
    assert [i.text for i in poetry_prod(tmp_path, data)] == [
        "uvicorn[standard]>=0.30,<0.31 ; sys_platform == 'linux'",
        "mylib @ git+https://github.com/example/mylib.git@v1.0",
    ]
    assert [i.text for i in dev_items(tmp_path, data)] == ["black"]


def test_poetry_sources_name_the_index_of_a_dependency(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pyproject.toml": """
[tool.poetry.dependencies]
python = "^3.11"
inhouse = { version = "1.2.0", source = "corp" }
fastapi = { version = "*", source = "pypi" }
[[tool.poetry.source]]
name = "corp"
url = "https://pypi.corp.example/simple"
priority = "explicit"
""",
        },
    )
    data = read_pyproject(tmp_path) or {}
    items = poetry_prod(tmp_path, data)
    assert [(i.text, i.index) for i in items] == [
        ("inhouse==1.2.0", "https://pypi.corp.example/simple"),
        ("fastapi", None),
    ]
    data["tool"]["poetry"]["dependencies"]["inhouse"]["source"] = "nope"
    with pytest.raises(
        ConfigError, match="source 'nope' is not a \\[\\[tool.poetry.source\\]\\] name"
    ):
        poetry_prod(tmp_path, data)


def test_include_group_cycle_and_bad_requirement(tmp_path: Path) -> None:
    write_tree(
        tmp_path, {"pyproject.toml": '[dependency-groups]\ndev = [{include-group = "dev"}]\n'}
    )
    with pytest.raises(ConfigError, match="include each other"):
        dev_items(tmp_path, read_pyproject(tmp_path) or {})
    write_tree(tmp_path, {"pyproject.toml": '[dependency-groups]\ntest = ["pytest >>> 1"]\n'})
    with pytest.raises(ConfigError, match=r"\[dependency-groups\].test: invalid requirement"):
        dev_items(tmp_path, read_pyproject(tmp_path) or {})


def test_console_scripts_become_commands_that_run_them() -> None:
    pep621 = {"project": {"scripts": {"serve": "svc.cli:main", "odd": "svc.app:App.run [x]"}}}
    assert script_command(pep621, "serve") == [
        "python3", "-c", "import sys; from svc.cli import main; sys.exit(main())",
    ]  # fmt: skip
    assert script_command(pep621, "odd") == [
        "python3", "-c", "import sys; from svc.app import App; sys.exit(App.run())",
    ]  # fmt: skip
    poetry = {"tool": {"poetry": {"scripts": {
        "a": "svc.a:main",
        "b": {"reference": "svc.b:main", "type": "console"},
        "c": {"reference": "bin/c.sh", "type": "file"},
    }}}}  # fmt: skip
    assert script_command(poetry, "a") is not None and script_command(poetry, "b") is not None
    assert script_command(poetry, "c") is None and script_command(pep621, "gunicorn") is None
    assert script_command({"project": {"scripts": "not a table"}}, "serve") is None
