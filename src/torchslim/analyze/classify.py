"""Classifiers: every byte of the merged view goes into exactly one category.

Categories are tried in ``CATEGORIES`` order; the first that accepts a file
owns all its bytes. Each has a stable id (used in JSON, SARIF, --fail-on and
diffs) and a one-line why.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

# Python distributions a service does not run: tools for notebooks, tests, lint, debugging.
DEV_PYTHON: frozenset[str] = frozenset(
    {
        "jupyter",
        "jupyter-core",
        "jupyter-client",
        "jupyter-server",
        "jupyterlab",
        "jupyterlab-server",
        "notebook",
        "nbconvert",
        "nbformat",
        "nbclient",
        "ipython",
        "ipykernel",
        "ipywidgets",
        "ipdb",
        "pytest",
        "pytest-cov",
        "pytest-xdist",
        "coverage",
        "hypothesis",
        "tox",
        "nox",
        "black",
        "flake8",
        "ruff",
        "mypy",
        "pylint",
        "isort",
        "autopep8",
        "yapf",
        "pre-commit",
        "pdbpp",
        "memory-profiler",
        "line-profiler",
        "py-spy",
        "debugpy",
        "snakeviz",
        "sphinx",
        "tensorboard",
    }
)

CUDA_LIBS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cusparselt", re.compile(r"^libcusparseLt")),
    ("cublas", re.compile(r"^libcublas")),
    ("cudnn", re.compile(r"^libcudnn")),
    ("nccl", re.compile(r"^libnccl")),
    ("cupti", re.compile(r"^lib(cupti|nvperf_|pcsamplingutil|checkpoint)")),
    ("cufile", re.compile(r"^libcufile")),
    ("nvshmem", re.compile(r"^(lib)?nvshmem")),
    ("cufft", re.compile(r"^libcufft")),
    ("cusolver", re.compile(r"^libcusolver")),
    ("cusparse", re.compile(r"^libcusparse")),
    ("curand", re.compile(r"^libcurand")),
    ("nvrtc", re.compile(r"^libnvrtc")),
)
_CUDA_OTHER = re.compile(r"^lib(cudart|nvJitLink|nvToolsExt|nvjpeg|npp|cuda|nvblas|nvidia-ml)")
_SITE = re.compile(r"(^|/)(site|dist)-packages/")
_BIN_DIRS = ("bin/", "usr/bin/", "usr/local/bin/", "sbin/", "usr/sbin/", "opt/conda/bin/")
COMPILERS = re.compile(
    r"^((x86_64|aarch64)-linux-gnu-)?(gcc|g\+\+|c\+\+|cc|cpp|clang|clang\+\+|gfortran|nvcc|"
    r"cc1|cc1plus|lto1|collect2|cicc|ptxas)(-\d+(\.\d+)*)?$"
)
BUILD_TOOLS = re.compile(
    r"^((x86_64|aarch64)-linux-gnu-)?(make|gmake|cmake|ctest|cpack|ninja|git|ld|ld\.bfd|"
    r"ld\.gold|as|ar|ranlib|strip|objdump|autoconf|automake|libtool|pkg-config)(-\d+(\.\d+)*)?$"
)
_BUILD_TREES = (
    "usr/lib/gcc/",
    "usr/libexec/gcc/",
    "usr/lib/git-core/",
    "usr/share/git-core/",
    "usr/lib/bfd-plugins/",
)
_SHELLS = re.compile(r"^(bash|sh|dash|zsh|ash|ksh|busybox|fish)$")
_SECRET_NAMES = re.compile(
    r"(^|/)(\.env(\.[\w-]+)?|\.netrc|\.pgpass|\.git-credentials|id_(rsa|dsa|ecdsa|ed25519)|"
    r"\.aws/credentials|\.docker/config\.json|application_default_credentials\.json|"
    r"\.config/gcloud/credentials\.db|\.kube/config|\.pypirc)$"
)
_TESTS = re.compile(r"(^|/)(tests?|testing)/")
# The history line of the layer `torchslim build --target debug` adds on the service image.
DEBUG_TOOLS_LAYER = "torchslim: debug-tools"


@dataclass(frozen=True)
class FileFacts:
    """What a classifier may look at for one file."""

    path: str
    owner_kind: str  # python | debian | conda | ""
    owner: str
    dev_owner: bool
    private_key: bool
    layer: str = ""  # the created_by of the layer the file comes from


Test = Callable[[FileFacts], bool]


@dataclass(frozen=True)
class Category:
    id: str
    title: str
    why: str
    test: Test


def basename(path: str) -> str:
    return posixpath.basename(path)


def in_bin_dir(path: str) -> bool:
    return posixpath.dirname(path) + "/" in _BIN_DIRS or "/bin/" in path


def is_compiler(path: str) -> bool:
    name = basename(path)
    if COMPILERS.match(name):
        return (
            in_bin_dir(path)
            or path.startswith(("usr/lib/gcc/", "usr/libexec/gcc/"))
            or ("/cuda" in "/" + path)
        )
    return False


def is_build_tool(path: str) -> bool:
    if is_compiler(path) or path.startswith(_BUILD_TREES):
        return True
    if re.match(r"^usr/(local/)?share/cmake(-[\d.]+)?/", path):
        return True
    if re.search(r"(^|/)cuda[^/]*/(nvvm|bin)/", path):
        return True
    if re.search(r"(site|dist)-packages/(cmake|ninja)/", path):
        return True
    return bool(BUILD_TOOLS.match(basename(path)) and in_bin_dir(path))


def cuda_lib(path: str) -> str | None:
    """``cublas`` … for a CUDA library file, ``other`` for the rest of CUDA, else None."""
    if re.search(r"(site|dist)-packages/triton/", path):
        return "triton"
    name = basename(path)
    for lib, pat in CUDA_LIBS:
        if pat.match(name):
            return lib
    if _CUDA_OTHER.match(name) or re.search(r"(site|dist)-packages/nvidia/", path):
        return "other"
    if re.match(r"^usr/local/cuda[^/]*/", path):
        return "other"
    return None


def torch_part(path: str) -> str | None:
    m = re.search(r"(?:site|dist)-packages/torch/([^/]+)/", path)
    if m is None:
        return "python" if re.search(r"(site|dist)-packages/torch/[^/]+$", path) else None
    part = m.group(1)
    if part == "bin" and path.endswith("/torch_shm_manager"):
        return "lib"  # torch.multiprocessing runs it: part of the runtime
    return part if part in ("test", "bin", "include", "lib") else "python"


def is_cache(path: str) -> str | None:
    if "/__pycache__/" in "/" + path:
        return "pycache"
    if re.search(r"(^|/)\.cache/pip/", path):
        return "pip"
    if re.search(r"(^|/)(opt/)?(conda|miniconda3|mambaforge|miniforge3)/pkgs/", path):
        return "conda-pkgs"
    if path.startswith(("var/lib/apt/lists/", "var/cache/apt/")):
        return "apt"
    return None


def _cat(id: str, title: str, why: str, test: Test) -> Category:
    return Category(id, title, why, test)


CATEGORIES: tuple[Category, ...] = (
    _cat(
        "secrets",
        "Likely secrets",
        "private keys and credential files must never ship in an image",
        lambda f: f.private_key or bool(_SECRET_NAMES.search(f.path)),
    ),
    _cat(
        "debug-tools",
        "Debug tools",
        "the debug image's own layer (busybox, py-spy) on top of the service's shared layers",
        lambda f: f.layer == DEBUG_TOOLS_LAYER,
    ),
    *(
        _cat(
            f"cache.{kind}",
            f"Cache: {kind}",
            why,
            (lambda k: lambda f: is_cache(f.path) == k)(kind),
        )
        for kind, why in (
            ("pip", "pip's download/wheel cache; only speeds up a later pip install"),
            ("conda-pkgs", "conda's package tarballs; the environment is already unpacked"),
            ("apt", "apt package lists and .deb cache; no apt runs in a service"),
            ("pycache", "bytecode compiled at install or run time; regenerated when needed"),
        )
    ),
    _cat(
        "build-tools",
        "Compilers and build tools",
        "gcc, cc1, make, cmake, nvcc, git: needed to build, not to serve",
        lambda f: is_build_tool(f.path),
    ),
    _cat(
        "python.dev",
        "Dev-only Python packages",
        "notebooks, test runners, linters and debuggers a service never imports",
        lambda f: f.dev_owner,
    ),
    *(
        _cat(
            f"torch.{part}",
            f"torch/{part}",
            why,
            (lambda p: lambda f: torch_part(f.path) == p)(part),
        )
        for part, why in (
            ("test", "PyTorch's own test suite; never imported by a service"),
            ("bin", "test binaries and protoc shipped in the wheel; no service runs them"),
            ("include", "C++ headers; needed only to compile extensions or torch.compile"),
        )
    ),
    _cat(
        "headers",
        "C/C++ headers",
        "headers are for compiling; a running service never reads them",
        lambda f: (
            f.path.endswith((".h", ".hpp", ".hh", ".cuh", ".hxx"))
            or f.path.startswith(("usr/include/", "usr/local/include/"))
        ),
    ),
    _cat(
        "static-libs",
        "Static libraries",
        ".a archives are linked at build time, never loaded at run time",
        lambda f: f.path.endswith(".a"),
    ),
    *(
        _cat(
            f"cuda.{lib}",
            f"CUDA: {lib}",
            f"{lib} libraries (by name), with the wheel or package that brought them",
            (lambda k: lambda f: cuda_lib(f.path) == k)(lib),
        )
        for lib in [name for name, _ in CUDA_LIBS] + ["triton", "other"]
    ),
    *(
        _cat(
            f"torch.{part}",
            "torch (Python)" if part == "python" else f"torch/{part}",
            why,
            (lambda p: lambda f: torch_part(f.path) == p)(part),
        )
        for part, why in (
            ("lib", "libtorch and its bundled shared libraries: the runtime itself"),
            ("python", "torch's Python modules"),
        )
    ),
    _cat(
        "tests",
        "Test suites",
        "packages' own tests directories; never imported by a service",
        lambda f: bool(_SITE.search(f.path) and _TESTS.search(f.path.split("-packages/", 1)[1])),
    ),
    _cat(
        "ssh-server",
        "SSH server",
        "an SSH daemon in a container is an attack surface; use `docker exec` / `kubectl exec`",
        lambda f: (
            basename(f.path) in ("sshd", "dropbear", "sshd_config")
            or f.path.startswith(("usr/lib/openssh/", "etc/ssh/sshd_config"))
            or f.owner in ("openssh-server", "dropbear-bin")
        ),
    ),
    _cat(
        "shells",
        "Shells",
        "interactive shells; a distroless service image needs none",
        lambda f: bool(_SHELLS.match(basename(f.path)) and in_bin_dir(f.path)),
    ),
    _cat(
        "python.packages",
        "Python packages",
        "installed Python distributions (sizes per distribution from RECORD)",
        lambda f: f.owner_kind == "python" or bool(_SITE.search(f.path)),
    ),
    _cat(
        "conda.packages",
        "Conda packages",
        "packages recorded in conda-meta",
        lambda f: f.owner_kind == "conda",
    ),
    _cat(
        "debian.packages",
        "Debian packages",
        "files owned by installed Debian packages (dpkg status and file lists)",
        lambda f: f.owner_kind == "debian",
    ),
    _cat(
        "other",
        "Other files",
        "files no package manager owns (app code, models, data)",
        lambda f: True,
    ),
)

BY_ID: dict[str, Category] = {c.id: c for c in CATEGORIES}


def classify(facts: FileFacts) -> Category:
    for cat in CATEGORIES:
        if cat.test(facts):
            return cat
    return CATEGORIES[-1]
