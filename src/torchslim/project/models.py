"""Model files: find them in a project, and expand ``model`` entries into files.

A Hugging Face model folder (``config.json`` next to weights or tokenizer files) is one
entry; a weight file anywhere else is one entry. ``model`` takes files, folders and
globs (``models/**/*.safetensors``); every file must lie inside the project once
symlinks are resolved.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torchslim.errors import ConfigError
from torchslim.project.dockerignore import PatternList
from torchslim.project.ignore import APP_ROOT, DEFAULT_IGNORE, read_dockerignore

WEIGHT_SUFFIXES = {
    ".pt": "PyTorch",
    ".pth": "PyTorch",
    ".safetensors": "safetensors",
    ".onnx": "ONNX",
    ".bin": "PyTorch (HF .bin)",
    ".ckpt": "checkpoint",
    ".gguf": "GGUF",
}
HF_FILES = {
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "generation_config.json",
    "preprocessor_config.json",
}
# Inside a model folder: a cloned HF repo's .git holds every LFS blob a second time.
_FOLDER_IGNORE = PatternList([p for p, _ in DEFAULT_IGNORE if p.startswith("**/")])


@dataclass(frozen=True)
class ModelCandidate:
    rel: str  # a file, or a folder ending in "/"
    kind: str  # "PyTorch", "safetensors", "Hugging Face model folder" …
    size: int  # bytes, a folder's files together


def _is_hf_folder(names: set[str]) -> bool:
    has_weights = any(Path(n).suffix in WEIGHT_SUFFIXES for n in names)
    return "config.json" in names and (has_weights or len(names & HF_FILES) >= 2)


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for _, f in _folder_files(path, path))


def find_model_files(root: Path, ignore: PatternList | None = None) -> list[ModelCandidate]:
    """Weight files and HF model folders in ``root``, largest first."""
    root = root.resolve()
    ignore = ignore or PatternList([p for p, _ in DEFAULT_IGNORE] + read_dockerignore(root))
    out: list[ModelCandidate] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root).as_posix()
        base = "" if base == "." else base
        names = set(filenames)
        if base and _is_hf_folder(names):
            out.append(ModelCandidate(base + "/", "Hugging Face model folder",
                                      _folder_size(Path(dirpath))))  # fmt: skip
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in sorted(dirnames) if not ignore.matches(f"{base}/{d}".lstrip("/"))]
        for name in sorted(filenames):
            rel = f"{base}/{name}".lstrip("/")
            kind = WEIGHT_SUFFIXES.get(Path(name).suffix.lower())
            if kind is None or ignore.matches(rel):
                continue
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            out.append(ModelCandidate(rel, kind, path.stat().st_size))
    return sorted(out, key=lambda m: (-m.size, m.rel))


def holds_only_weights(folder: Path) -> bool:
    """A folder of model files (weights, an HF model folder) with no Python code: what a
    Dockerfile COPYs as a model, not as the app."""
    files = [Path(d) / n for d, _, names in os.walk(folder) for n in names]
    if any(f.suffix == ".py" for f in files):
        return False
    return any(f.suffix.lower() in WEIGHT_SUFFIXES for f in files) or _is_hf_folder(
        {f.name for f in files}
    )


def _folder_files(folder: Path, root: Path) -> Iterable[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(folder):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = [d for d in sorted(dirnames) if not _FOLDER_IGNORE.matches(f"{rel_dir}/{d}")]
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}"
            if not _FOLDER_IGNORE.matches(rel):
                yield rel, Path(dirpath) / name


def _confined(root: Path, path: Path, entry: str, key: str) -> None:
    real = path.resolve()
    if not real.is_relative_to(root):
        raise ConfigError(
            f"key `{key}`: {entry!r} resolves to {real}, outside the project {root}; "
            "copy the file into the project (the image gets only project files)"
        )


def expand_model_entries(
    root: Path, entries: Sequence[str], *, key: str = "model"
) -> list[tuple[Path, str]]:
    """``(source, image path)`` for every file ``entries`` name: files, folders, globs.

    The image path is ``/app/<path relative to the project>``. An entry that is missing,
    matches nothing, or leads outside the project is a ConfigError naming ``key``.
    """
    root = root.resolve()
    out: dict[str, Path] = {}
    for entry in entries:
        if any(c in entry for c in "*?["):
            matches = sorted(glob.glob(entry, root_dir=root, recursive=True))
            found = [m for m in matches if (root / m).is_file()]
            if not found:
                raise ConfigError(f"key `{key}`: {entry!r} matches no files in {root}")
            pairs = [(Path(m).as_posix(), root / m) for m in found]
        else:
            path = root / entry
            if path.is_dir():
                _confined(root, path, entry, key)
                pairs = list(_folder_files(path, root))
            elif path.is_file():
                pairs = [(Path(entry).as_posix(), path)]
            else:
                raise ConfigError(f"key `{key}`: {entry!r} does not exist in {root}")
        for rel, path in pairs:
            _confined(root, path, entry, key)
            rel = os.path.normpath(rel)
            if rel.startswith(".."):
                raise ConfigError(f"key `{key}`: {entry!r} leads outside the project {root}")
            out.setdefault(rel, path)
    return [(path, f"{APP_ROOT}/{rel}") for rel, path in sorted(out.items())]


def expand_files(
    root: Path, files: dict[str, str], *, key: str = "files"
) -> list[tuple[Path, str]]:
    """``files = { "config.json" = "/app/config.json" }`` → ``(source, image path)``."""
    root = root.resolve()
    out = []
    for src, dest in files.items():
        path = root / src
        if not path.is_file():
            what = "a folder; `files` takes single files (use `model` or `app`)"
            raise ConfigError(
                f"key `{key}`: {src!r} is "
                + (what if path.is_dir() else "not a file in the project")
            )
        _confined(root, path, src, key)
        out.append((path, dest))
    return out


__all__ = [
    "HF_FILES",
    "WEIGHT_SUFFIXES",
    "ModelCandidate",
    "expand_files",
    "expand_model_entries",
    "find_model_files",
]
