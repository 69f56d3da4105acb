"""Model files: found by type and size, HF folders as one entry, entries expanded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.projects import write_tree

from torchslim.errors import ConfigError
from torchslim.project import expand_files, expand_model_entries, find_model_files


def hf_project(root: Path) -> Path:
    config = json.dumps({"model_type": "bert", "hidden_size": 8})
    return write_tree(
        root,
        {
            "models/bert-tiny/config.json": config,
            "models/bert-tiny/model.safetensors": b"\0" * 300,
            "models/bert-tiny/tokenizer.json": "{}",
            "models/bert-tiny/.git/lfs/objects/ab/blob": b"\0" * 300,  # a clone's LFS copy
            "models/bert-tiny/.gitattributes": "*.safetensors filter=lfs\n",
            "weights/head.pt": b"\0" * 50,
            "weights/export.onnx": b"\0" * 70,
            "tokenizer/config.json": "{}",  # config.json alone is no model
            "venv/lib/torch/test.pt": b"\0" * 999,  # ignored: a virtualenv
            "tests/fixtures/tiny.pt": b"\0" * 5,  # ignored: tests
            "app/main.py": "",
        },
    )


def test_find_model_files_by_type_and_size(tmp_path: Path) -> None:
    found = find_model_files(hf_project(tmp_path))
    assert [(m.rel, m.kind) for m in found] == [
        ("models/bert-tiny/", "Hugging Face model folder"),
        ("weights/export.onnx", "ONNX"),
        ("weights/head.pt", "PyTorch"),
    ]
    shipped = expand_model_entries(tmp_path, ["models/bert-tiny"])
    assert found[0].size == sum(src.stat().st_size for src, _ in shipped)
    assert found[0].size < 600  # the .git copy is not counted (it is not shipped)


def test_expand_folders_globs_and_files(tmp_path: Path) -> None:
    hf_project(tmp_path)
    pairs = expand_model_entries(tmp_path, ["models/bert-tiny/", "weights/*.pt", "**/*.onnx"])
    assert [dest for _, dest in pairs] == [
        "/app/models/bert-tiny/.gitattributes",
        "/app/models/bert-tiny/config.json",
        "/app/models/bert-tiny/model.safetensors",
        "/app/models/bert-tiny/tokenizer.json",
        "/app/weights/export.onnx",
        "/app/weights/head.pt",
    ]
    assert all(src.is_file() for src, _ in pairs)


def test_entries_outside_the_project_or_matching_nothing(tmp_path: Path) -> None:
    project = hf_project(tmp_path / "p")
    write_tree(tmp_path, {"outside/big.pt": b"x"})
    os.symlink(tmp_path / "outside", project / "linked")
    with pytest.raises(ConfigError, match=r"key `model`: 'linked/big.pt' resolves to .*outside"):
        expand_model_entries(project, ["linked/big.pt"])
    with pytest.raises(ConfigError, match=r"key `model`: 'linked' resolves to .*outside"):
        expand_model_entries(project, ["linked"])
    with pytest.raises(ConfigError, match=r"key `model`: '../outside/big.pt' resolves"):
        expand_model_entries(project, ["../outside/big.pt"])
    with pytest.raises(ConfigError, match=r"key `model`: '\*\*/\*.gguf' matches no files"):
        expand_model_entries(project, ["**/*.gguf"])
    with pytest.raises(ConfigError, match=r"key `model`: 'nope.pt' does not exist"):
        expand_model_entries(project, ["nope.pt"])


def test_files_map_single_files(tmp_path: Path) -> None:
    write_tree(tmp_path, {"conf/app.json": "{}", "conf/dir/x": ""})
    assert expand_files(tmp_path, {"conf/app.json": "/etc/svc/app.json"}) == [
        (tmp_path.resolve() / "conf/app.json", "/etc/svc/app.json")
    ]
    with pytest.raises(ConfigError, match=r"key `files`: 'conf/dir' is a folder"):
        expand_files(tmp_path, {"conf/dir": "/x"})
