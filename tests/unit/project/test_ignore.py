"""What goes into the image: defaults, .dockerignore, exclude/include, secrets refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.projects import write_tree

from torchslim.project import SecretFileError, ignore_lines, merge_dockerignore, select_app_files
from torchslim.project.dockerignore import PatternList
from torchslim.project.ignore import BEGIN, DEFAULT_IGNORE, END

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


def flat_repo(root: Path) -> Path:
    """A flat repository as the issue describes it: app = "." ships everything."""
    return write_tree(
        root,
        {
            "main.py": "app = None\n",
            "service/model.py": "x = 1\n",
            "service/__pycache__/model.cpython-311.pyc": b"\0",
            "README.md": "# svc\n",
            "Dockerfile": "FROM python:3.11-slim\n",
            "train.py": "print('train')\n",
            "tests/test_x.py": "",
            ".env": "TOKEN=1\n",
            ".env.example": "TOKEN=\n",
            "deploy/id_ed25519": PRIVATE_KEY,
            "deploy/id_ed25519.pub": "ssh-ed25519 AAAA\n",
            "certs/ca.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            ".aws/credentials": "[default]\naws_secret_access_key = x\n",
            "venv/lib/site.py": "",
            "node_modules/left-pad/index.js": "",
            "hello.tar": b"\0" * 10,
            ".git/config": "[core]\n",
            "torchslim.toml": "name = 'x'\n",
            "requirements.txt": "fastapi\n",
        },
    )


def test_flat_repo_defaults_and_secrets_found(tmp_path: Path) -> None:
    selection = select_app_files(flat_repo(tmp_path))
    rels = [f.rel for f in selection.files]
    assert rels == [
        ".aws/credentials",
        ".env",
        ".env.example",
        "README.md",
        "certs/ca.pem",
        "deploy/id_ed25519",
        "deploy/id_ed25519.pub",
        "main.py",
        "requirements.txt",
        "service/model.py",
        "train.py",
    ]
    assert selection.files[0].image_path == "/app/.aws/credentials"
    assert [(s.rel, s.rule.id) for s in selection.secrets] == [
        (".aws/credentials", "aws"),
        (".env", "env-file"),
        ("deploy/id_ed25519", "ssh-key"),
    ]  # the certificate-only .pem and the .pub key are not secrets
    with pytest.raises(SecretFileError) as err:
        selection.check_secrets()
    msg = str(err.value)
    assert "\n" not in msg and "3 file(s) that look like secrets" in msg
    assert ".env (dotenv file" in msg and 'include = [".aws/credentials"]' in msg


def test_dockerignore_exclude_and_include_decide(tmp_path: Path) -> None:
    flat_repo(tmp_path)
    write_tree(tmp_path, {".dockerignore": "# mine\n*.md\ndeploy/\n.aws\n!tests/test_x.py\n"})
    selection = select_app_files(tmp_path, exclude=["train.py"], include=[".env"])
    rels = {f.rel for f in selection.files}
    assert {"README.md", "train.py", "deploy/id_ed25519", ".aws/credentials"}.isdisjoint(rels)
    assert "tests/test_x.py" in rels  # the user's exception wins over our default
    assert selection.secrets == ()  # .env is shipped deliberately
    assert [s.rel for s in selection.included_secrets] == [".env"]
    selection.check_secrets()


def test_app_folder_include_outside_it_skip_and_symlinks(tmp_path: Path) -> None:
    flat_repo(tmp_path)
    write_tree(tmp_path, {"config/settings.yaml": "a: 1\n", "service/weights.pt": b"w"})
    os.symlink(tmp_path / "main.py", tmp_path / "service" / "link.py")
    selection = select_app_files(
        tmp_path,
        "service",
        include=["config/settings.yaml"],
        skip=[tmp_path / "service" / "weights.pt"],
    )
    assert [(f.rel, f.image_path) for f in selection.files] == [
        ("config/settings.yaml", "/app/config/settings.yaml"),
        ("service/model.py", "/app/service/model.py"),
    ]
    assert selection.symlinks == ("service/link.py",)


def test_generated_dockerignore_uses_the_same_list() -> None:
    lines = ignore_lines(include=["keep.env"], exclude=["data/"])
    assert lines[: len(DEFAULT_IGNORE)] == [p for p, _ in DEFAULT_IGNORE]
    assert lines[-2:] == ["data/", "!keep.env"]
    rules = PatternList(lines)
    for path in (".env", "a/.env.production", "deploy/id_rsa", "venv/x.py", "hello.tar"):
        assert rules.matches(path), path
    for path in (".env.example", "keep.env", "main.py", "service/a.py"):
        assert not rules.matches(path), path


def test_merge_keeps_user_lines_after_our_block_and_replaces_an_old_block() -> None:
    user = "# my rules\nnotebooks/\n!.env.ci\n**/__pycache__\n"
    merged = merge_dockerignore(user, ["**/__pycache__", ".env", "*.tar"])
    lines = merged.splitlines()
    assert lines[0] == BEGIN and lines[1:3] == [".env", "*.tar"] and lines[3] == END
    assert merged.endswith(user)  # the user's lines kept verbatim, after ours
    rules = PatternList(lines)
    assert not rules.matches(".env.ci") and rules.matches(".env")
    again = merge_dockerignore(merged, [".env", "build"])
    assert again.count(BEGIN) == 1 and ".env\nbuild\n" in again and "*.tar" not in again
    assert again.endswith(user)
    assert merge_dockerignore("", ["x"]) == f"{BEGIN}\nx\n{END}\n"
