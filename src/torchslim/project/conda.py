"""conda ``environment.yml``: its PyPI requirements, Python and torch variant.

An ML project often pins its environment with conda. What the image can install from
it: the ``pip:`` section as it is, and every conda package that has a PyPI counterpart
(most have the same name; ``pytorch``/``pytorch-cpu`` are ``torch``, ``torchvision-cpu``
is ``torchvision``). ``python=3.10`` is the Python; ``pytorch-cuda=12.1`` /
``cudatoolkit=11.8`` (``cu121``, ``cu118``) and ``cpuonly``/``pytorch-cpu`` (``cpu``) are
the torch variant. conda pins become PEP 440 ones: ``=1.2`` → ``==1.2.*``, ``==1.2`` kept,
``=1.2=<build>`` → ``==1.2``. Packages with no PyPI counterpart (cudnn, ffmpeg,
``lib*``) are named in one note.

The reader covers the YAML subset ``conda env export`` and hand-written files use:
top-level keys, block lists, a nested ``- pip:`` list, comments and quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from torchslim.debian.spec import PYTHON_SUITES
from torchslim.errors import ConfigError
from torchslim.project import reqfiles
from torchslim.project.items import RequirementItem
from torchslim.project.torchpin import variant_of_index

CONDA_FILES = ("environment.yml", "environment.yaml")

# conda name → PyPI name, where they differ.
_PYPI_NAME = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "torchvision-cpu": "torchvision",
    "torchaudio-cpu": "torchaudio",
    "py-opencv": "opencv-python-headless",
    "opencv": "opencv-python-headless",
    "matplotlib-base": "matplotlib",
    "py-xgboost": "xgboost",
    "msgpack-python": "msgpack",
    "pytables": "tables",
}
_CPU_TORCH = {"pytorch-cpu", "torchvision-cpu", "torchaudio-cpu", "cpuonly"}
_CUDA_PACKAGES = {"pytorch-cuda", "cudatoolkit", "cuda-toolkit", "cuda-version", "cuda"}
# conda packages of native libraries and tools: no PyPI package installs them.
_NO_PYPI = {
    "cudnn", "nccl", "magma", "blas", "openblas", "nomkl", "ffmpeg", "openssl", "zlib", "xz",
    "sqlite", "tk", "readline", "ncurses", "bzip2", "gcc", "gxx", "make", "git", "curl", "wget",
    "ca-certificates", "nodejs", "pkg-config", "pytorch-mutex", "ld_impl_linux-64", "tbb",
    "cudatoolkit-dev", "jpeg", "libjpeg-turbo", "freetype", "hdf5", "graphviz", "sox",
}  # fmt: skip
_NO_PYPI_PREFIXES = ("lib", "_", "cuda-", "r-", "magma-", "mkl-include", "intel-")
# The oldest torch with Linux wheels for each CPython torchslim's bases have.
_FIRST_TORCH = {"3.11": "2.0", "3.12": "2.2", "3.13": "2.5", "3.14": "2.9"}


@dataclass(frozen=True)
class Fact:
    value: str
    where: str  # "environment.yml:4 (python=3.10)"


@dataclass
class CondaEnv:
    """What ``environment.yml`` says, in PyPI terms, each item with its line."""

    path: Path
    items: list[RequirementItem] = field(default_factory=list)
    python: Fact | None = None
    variant: Fact | None = None
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # read (it and its pip -r includes)


@dataclass(frozen=True)
class _Line:
    number: int
    indent: int
    text: str  # the content, comment stripped


def find_environment(root: Path) -> Path | None:
    return next((root / n for n in CONDA_FILES if (root / n).is_file()), None)


def _strip_comment(text: str) -> str:
    quote = ""
    for i, ch in enumerate(text):
        if ch in "'\"" and not quote:
            quote = ch
        elif ch == quote:
            quote = ""
        elif ch == "#" and not quote and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text.rstrip()


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _flow_list(text: str) -> list[str]:
    """``[a, "b"]`` → ``["a", "b"]``."""
    inner = text.strip()[1:-1]
    return [_unquote(x) for x in inner.split(",") if x.strip()]


def parse_environment(text: str, name: str) -> tuple[list[_Line], list[_Line]]:
    """(conda dependency lines, pip lines) of an environment file's text."""
    conda: list[_Line] = []
    pip: list[_Line] = []
    key = ""
    pip_indent: int | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ConfigError(f"{name}:{number}: a tab in the indentation; indent with spaces")
        line = _strip_comment(raw)
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if indent == 0 and not body.startswith("-"):
            key, _, rest = body.partition(":")
            key, pip_indent = key.strip(), None
            if key == "dependencies" and rest.strip().startswith("["):
                conda += [_Line(number, 2, x) for x in _flow_list(rest)]
            continue
        if key != "dependencies" or not body.startswith("-"):
            continue
        item = body[1:].strip()
        if pip_indent is not None and indent > pip_indent:
            pip.append(_Line(number, indent, _unquote(item)))
            continue
        pip_indent = None
        if re.match(r"^pip\s*:", item):
            rest = item.split(":", 1)[1].strip()
            if rest.startswith("["):
                pip += [_Line(number, indent, x) for x in _flow_list(rest)]
            else:
                pip_indent = indent
            continue
        conda.append(_Line(number, indent, _unquote(item)))
    return conda, pip


_SPEC = re.compile(r"^(?:[\w.\-/:]+::)?([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(.*)$")


def conda_specifier(rest: str) -> str:
    """The PEP 440 specifier of a conda version spec: ``=1.2`` → ``==1.2.*``, ``==1.2`` kept,
    ``=1.2=py310_0`` → ``==1.2``, ``>=1.2,<2`` kept, ``1.2`` → ``==1.2.*``."""
    rest = rest.strip().replace(" ", "")
    if not rest:
        return ""
    if rest.startswith("=") and not rest.startswith("=="):
        version, _, build = rest[1:].partition("=")
        if build and "*" not in version:
            return f"=={version}"
        return f"=={version.rstrip('*').rstrip('.')}.*"
    if rest[0].isdigit():
        return f"=={rest.rstrip('*').rstrip('.')}.*"
    return rest


def _cuda_variant(version: str) -> str | None:
    m = re.match(r"^(\d+)\.(\d+)", version)
    return f"cu{m[1]}{m[2]}" if m else None


def _no_pypi(name: str) -> bool:
    return name in _NO_PYPI or name.startswith(_NO_PYPI_PREFIXES)


def _version_of(specifier: str) -> str:
    """The version a pin names (``==1.2.*`` → ``1.2``), or ""."""
    m = re.match(r"^==\s*([\w.]+?)(\.\*)?$", specifier)
    return m[1] if m else ""


def _check_torch_wheel(written: str, version: str, where: str) -> None:
    """A torch pin older than every torch with wheels for the bases' Pythons is refused."""
    try:
        pinned = Version(version)
    except InvalidVersion:
        return
    floors = [_FIRST_TORCH[p] for p in PYTHON_SUITES if p in _FIRST_TORCH]
    oldest = min(floors, key=Version) if floors else "2.0"
    if pinned < Version(oldest):
        pythons = " and ".join(sorted(PYTHON_SUITES))
        raise ConfigError(
            f"{where}: {written} has no wheel for CPython {pythons} (torch wheels for them "
            f"start at {oldest}): pin a newer pytorch there, or delete the pin and choose torch "
            "with --torch (or `torch` in the config)"
        )


class _Reader:
    def __init__(self, root: Path, path: Path) -> None:
        self.root = root
        self.path = path
        self.name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        self.env = CondaEnv(path, files=[path])
        self.no_pypi: list[str] = []

    def conda(self, line: _Line) -> None:
        m = _SPEC.match(line.text)
        if m is None:
            self.env.notes.append(f"{self.name}:{line.number}: {line.text!r} not read")
            return
        name, spec = m[1].lower(), conda_specifier(m[2])
        where = f"{self.name}:{line.number}"
        if name == "pip":
            return
        if name == "python":
            py = re.match(r"^==(3\.\d+)", spec) or re.match(r"^>=?(3\.\d+)", spec)
            if py:
                self.env.python = Fact(py[1], f"{where} ({line.text})")
            return
        if name in _CUDA_PACKAGES:
            variant = _cuda_variant(_version_of(spec))
            if variant and self.env.variant is None:
                self.env.variant = Fact(variant, f"{line.text} in {where}")
            return
        if name in _CPU_TORCH and self.env.variant is None:
            self.env.variant = Fact("cpu", f"{line.text} in {where}")
        if name == "cpuonly":
            return
        if _no_pypi(name):
            self.no_pypi.append(name)
            return
        pypi = _PYPI_NAME.get(name, name)
        if pypi == "torch" and (version := _version_of(spec)):
            _check_torch_wheel(line.text, version, where)
        self._add(f"{pypi}{spec}", where, line.text)

    def _add(self, text: str, where: str, written: str) -> None:
        try:
            Requirement(text)
        except InvalidRequirement:
            raise ConfigError(
                f"{where}: {written!r} is not a conda package spec torchslim reads; write it as "
                "name=1.2, name==1.2.3 or name>=1.2"
            ) from None
        self.env.items.append(RequirementItem(text, where))

    def pip(self, line: _Line) -> None:
        where = f"{self.name}:{line.number}"
        text = line.text
        option, _, value = text.partition(" ")
        if option in ("-r", "--requirement"):
            include = (self.path.parent / value.strip()).resolve()
            items, parsed = reqfiles.file_items(self.root, include)
            self.env.items += items
            self.env.files += list(parsed.files)
            return
        if option in ("-i", "--index-url", "--extra-index-url"):
            found = variant_of_index(value)
            if found is not None and self.env.variant is None:
                self.env.variant = Fact(found, f"{value.strip()} in {where}")
            self.env.notes.append(
                f"{where}: {text} not used: indexes come from your pip config "
                "(pip config set global.extra-index-url …)"
            )
            return
        if text.startswith("-"):
            self.env.notes.append(f"{where}: pip option {text!r} not used")
            return
        if (version := _pip_torch_version(text)) is not None:
            _check_torch_wheel(text, version, where)
        self.env.items.append(RequirementItem(text, f"{where} (pip)"))


def _pip_torch_version(text: str) -> str | None:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return None
    exact = [s.version for s in req.specifier if s.operator == "=="]
    if req.name.lower() != "torch" or not exact:
        return None
    return exact[0].split("+")[0].rstrip("*").rstrip(".")


def read_environment(root: Path, path: Path) -> CondaEnv:
    """The PyPI requirements, Python and torch variant of conda ``path``; ConfigError
    (``file:line``) on what it cannot read or a torch pin no wheel exists for."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name}: cannot read it ({exc})") from None
    reader = _Reader(root, path)
    conda, pip = parse_environment(text, reader.name)
    for line in conda:
        reader.conda(line)
    for line in pip:
        reader.pip(line)
    if reader.no_pypi:
        names = ", ".join(dict.fromkeys(reader.no_pypi))
        reader.env.notes.append(
            f"{reader.name}: no PyPI package for the conda packages {names}; not installed "
            "(torch's wheels carry the CUDA libraries it needs)"
        )
    return reader.env


__all__ = [
    "CONDA_FILES",
    "CondaEnv",
    "Fact",
    "conda_specifier",
    "find_environment",
    "parse_environment",
    "read_environment",
]
