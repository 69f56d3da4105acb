"""Lint rules. Each has a stable id (``TS1xx``), a severity, a one-line why and a fix.

Rules about *what ships* look only at the final stage and the stages it is
built FROM (its lineage): a compiler or a pip cache in a builder stage that
is thrown away costs nothing. Rules about provenance and secrets look at
every stage.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from torchslim.lint.images import (
    ImageRef,
    is_cuda_base,
    is_devel,
    parse_ref,
    python_of,
    site_packages,
)
from torchslim.lint.parser import Dockerfile, Instruction, Stage, parse_arg, parse_env
from torchslim.lint.shell import Install, install_of, packages, requirement_files, run_commands

Severity = Literal["error", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Hit:
    line: int
    message: str


Check = Callable[[Dockerfile], Iterator[Hit]]


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: Severity
    why: str
    fix: str
    check: Check


RULES: dict[str, Rule] = {}


def rule(id: str, name: str, severity: Severity, why: str, fix: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        RULES[id] = Rule(id, name, severity, why, fix, fn)
        return fn

    return register


# -- helpers ------------------------------------------------------------------------------


def shipped(df: Dockerfile) -> list[Stage]:
    """The final stage and its FROM-ancestors: everything that ends up in the image."""
    return df.lineage(df.final)


def shipped_instructions(df: Dockerfile, keyword: str | None = None) -> Iterator[Instruction]:
    for stage in reversed(shipped(df)):
        for ins in stage.instructions:
            if keyword is None or ins.keyword == keyword:
                yield ins


def base_ref(df: Dockerfile, stage: Stage) -> ImageRef:
    """The external image a stage finally rests on (following FROM <stage>)."""
    return parse_ref(df.lineage(stage)[-1].resolved)


def stage_env(df: Dockerfile, stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for st in reversed(df.lineage(stage)):
        for ins in st.instructions:
            if ins.keyword == "ENV":
                env.update(parse_env(ins.args))
            elif ins.keyword == "ARG":
                env.update({k: v for k, v in parse_arg(ins.args) if v is not None})
    return env


def installs(ins: Instruction) -> list[Install]:
    if ins.keyword != "RUN":
        return []
    return [i for c in run_commands(ins) if (i := install_of(c)) is not None]


def _cache_mount(ins: Instruction, target: str = "") -> bool:
    return any("type=cache" in m and target in m for m in ins.flags.get("mount", []))


# -- rules --------------------------------------------------------------------------------


@rule(
    "TS101",
    "devel-final-stage",
    "error",
    "A -devel base ships compilers, headers and static CUDA libs (GBs) no service runs.",
    "Build in the -devel image, then FROM the matching -runtime image for the final stage.",
)
def devel_final(df: Dockerfile) -> Iterator[Hit]:
    final = df.lineage(df.final)[-1]
    ref = parse_ref(final.resolved)
    if is_devel(ref):
        yield Hit(final.from_line.line, f"final stage is built on {final.resolved}")


_COMPILERS = re.compile(
    r"^(build-essential|gcc|g\+\+|gcc-\d+|g\+\+-\d+|clang(-\d+)?|gfortran|cuda-nvcc.*|"
    r"cuda-toolkit.*|cxx-compiler|c-compiler|gxx_linux-64|gcc_linux-64|build-base)$"
)


@rule(
    "TS102",
    "compiler-in-final-image",
    "warning",
    "Compilers installed in a single-stage build stay in the image: size and attack surface.",
    "Install compilers in a builder stage and copy only the built environment to the runtime.",
)
def compilers(df: Dockerfile) -> Iterator[Hit]:
    for ins in shipped_instructions(df, "RUN"):
        for inst in installs(ins):
            if inst.tool in ("apt", "apk", "dnf", "conda"):
                found = [p for p in packages(inst) if _COMPILERS.match(p)]
                if found:
                    yield Hit(ins.line, f"installs {', '.join(found)} in the final image")


def _pip_cache_ok(ins: Instruction, inst: Install, env: dict[str, str]) -> bool:
    text = ins.text
    if inst.tool == "pip":
        return (
            inst.command.has("--no-cache-dir")
            or "PIP_NO_CACHE_DIR" in env
            or "PIP_NO_CACHE_DIR" in inst.command.env
            or _cache_mount(ins)
            or "pip cache purge" in text
            or "/.cache/pip" in text
            and "rm " in text
        )
    if inst.tool in ("uv", "uv-sync"):
        return (
            inst.command.has("--no-cache", "-n")
            or "UV_NO_CACHE" in env
            or "UV_NO_CACHE" in inst.command.env
            or _cache_mount(ins)
            or "uv cache clean" in text
            or "/.cache/uv" in text
            and "rm " in text
        )
    if inst.tool == "conda":
        return "clean" in text or _cache_mount(ins)
    return True


@rule(
    "TS103",
    "package-cache-kept",
    "warning",
    "pip, uv and conda keep every downloaded wheel (torch: GBs) in a cache inside the layer.",
    "Add --no-cache-dir (pip), --no-cache (uv), ENV PIP_NO_CACHE_DIR=1, "
    "a RUN --mount=type=cache, or `conda clean -afy`.",
)
def pip_cache(df: Dockerfile) -> Iterator[Hit]:
    for stage in reversed(shipped(df)):
        env = stage_env(df, stage)
        for ins in stage.instructions:
            for inst in installs(ins):
                if inst.tool in ("pip", "uv", "uv-sync", "conda") and not _pip_cache_ok(
                    ins, inst, env
                ):
                    yield Hit(ins.line, f"`{' '.join(inst.command.argv[:3])}` keeps its cache")
                    break


@rule(
    "TS104",
    "apt-recommends",
    "info",
    "apt installs recommended packages by default, often hundreds of MB nobody asked for.",
    "Use apt-get install --no-install-recommends.",
)
def apt_recommends(df: Dockerfile) -> Iterator[Hit]:
    for ins in shipped_instructions(df, "RUN"):
        for inst in installs(ins):
            if inst.tool == "apt" and not (
                inst.command.has("--no-install-recommends")
                or "Install-Recommends=false" in ins.text
                or "Install-Recommends=0" in ins.text
            ):
                yield Hit(ins.line, "apt install without --no-install-recommends")
                break


@rule(
    "TS105",
    "apt-lists-kept",
    "warning",
    "apt-get update leaves ~40 MB of package lists in the layer unless removed in the same RUN.",
    "End the RUN with `&& rm -rf /var/lib/apt/lists/*` (or use a cache mount for them).",
)
def apt_lists(df: Dockerfile) -> Iterator[Hit]:
    for ins in shipped_instructions(df, "RUN"):
        cmds = run_commands(ins)
        updates = any(c.name in ("apt-get", "apt") and "update" in c.argv[1:2] for c in cmds)
        if (
            updates
            and "/var/lib/apt/lists" not in ins.text
            and not _cache_mount(ins, "/var/lib/apt")
        ):
            yield Hit(ins.line, "apt-get update without removing /var/lib/apt/lists")


def _is_root(user: str) -> bool:
    name = user.split(":", 1)[0].strip()
    return name in ("root", "0", "")


@rule(
    "TS106",
    "runs-as-root",
    "error",
    "A container process running as root turns any RCE into root on the node's kernel surface.",
    "Create a numeric user and end with `USER 1000:1000` (numeric so runAsNonRoot can check it).",
)
def root_user(df: Dockerfile) -> Iterator[Hit]:
    last: Instruction | None = None
    for ins in shipped_instructions(df, "USER"):
        last = ins
    if last is None:
        yield Hit(df.final.from_line.line, "no USER in the final stage: runs as root")
    elif _is_root(last.args):
        yield Hit(last.line, f"USER {last.args} runs as root")


@rule(
    "TS107",
    "ssh-server",
    "error",
    "An SSH server in a container is an unmonitored way in; use `kubectl exec`/`docker exec`.",
    "Remove openssh-server and EXPOSE 22.",
)
def ssh(df: Dockerfile) -> Iterator[Hit]:
    for ins in shipped_instructions(df):
        if ins.keyword == "EXPOSE" and any(p.split("/")[0] == "22" for p in ins.args.split()):
            yield Hit(ins.line, "exposes port 22 (SSH)")
        for inst in installs(ins):
            if any(p in ("openssh-server", "dropbear", "ssh") for p in packages(inst)):
                yield Hit(ins.line, "installs an SSH server")


@rule(
    "TS108",
    "no-healthcheck",
    "info",
    "Without HEALTHCHECK, docker and compose cannot tell a hung model server from a live one.",
    'Add HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen(...)"].',
)
def healthcheck(df: Dockerfile) -> Iterator[Hit]:
    found = [i for i in shipped_instructions(df, "HEALTHCHECK")]
    if not found:
        yield Hit(df.final.from_line.line, "final stage has no HEALTHCHECK")


@rule(
    "TS109",
    "unpinned-base",
    "warning",
    "`latest` or no tag makes the build depend on the day it runs; torch/CUDA versions drift.",
    "Pin a version tag (pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime) or a digest.",
)
def unpinned(df: Dockerfile) -> Iterator[Hit]:
    names = {st.name.lower() for st in df.stages if st.name}
    for st in df.stages:
        ref = parse_ref(st.resolved)
        if ref.unresolved or ref.is_scratch or ref.name in names or ref.digest:
            continue
        if ref.tag is None or ref.tag == "latest":
            yield Hit(st.from_line.line, f"base {st.resolved} is not pinned to a version")
    for ins in df.instructions:
        src = ins.flag("from")
        if ins.keyword == "COPY" and src and src.lower() not in names and not src.isdigit():
            ref = parse_ref(src)
            if not ref.unresolved and not ref.digest and ref.tag in (None, "latest"):
                yield Hit(ins.line, f"COPY --from={src} is not pinned to a version")


_DEV_TOOLS = frozenset(
    {
        "jupyter", "jupyterlab", "notebook", "ipykernel", "ipython", "pytest", "pytest-cov",
        "black", "ruff", "mypy", "flake8", "pylint", "isort", "pre-commit", "tox", "nox",
        "ipywidgets", "jupyter_contrib_nbextensions", "debugpy", "coverage",
    }
)  # fmt: skip
_DEV_REQ = re.compile(r"(^|[/_-])(dev|test|tests|docs|lint)([_.-]|$)|requirements[_-](dev|test)")


@rule(
    "TS110",
    "dev-deps-in-final-image",
    "warning",
    "Dev requirements and tools (jupyter, pytest, linters) in a serving image add size and CVEs.",
    "Install only prod requirements in the final stage (`poetry install --only main`, "
    "`uv sync --no-dev`); keep dev files for CI images.",
)
def dev_deps(df: Dockerfile) -> Iterator[Hit]:
    for ins in shipped_instructions(df, "RUN"):
        for inst in installs(ins):
            dev = sorted(_DEV_TOOLS.intersection(packages(inst)))
            files = [f for f in requirement_files(inst) if _DEV_REQ.search(f.rsplit("/", 1)[-1])]
            if inst.tool == "poetry" and not inst.command.has(
                "--only", "--without", "--no-dev", "--only-root"
            ):
                yield Hit(ins.line, "`poetry install` installs the dev group too")
            elif (
                inst.tool == "uv-sync"
                and inst.command.argv[1] == "sync"
                and not (inst.command.has("--no-dev", "--only-group", "--no-default-groups"))
            ):
                yield Hit(ins.line, "`uv sync` installs the dev group too")
            elif dev or files:
                yield Hit(ins.line, f"installs dev dependencies: {', '.join(dev + files)}")


_SYSTEM_PREFIXES = frozenset({"/usr/local", "/usr", "/opt/conda"})


@rule(
    "TS111",
    "site-packages-mismatch",
    "error",
    "Packages copied into another Python's site-packages are invisible to, or break, "
    "the stage's interpreter.",
    "Install into a venv at a fixed path (/opt/venv) and copy that, "
    "with the same Python in both stages.",
)
def site_mismatch(df: Dockerfile) -> Iterator[Hit]:
    for st in df.stages:
        dest_py = python_of(base_ref(df, st))
        for ins in st.instructions:
            src_stage_ref = ins.flag("from")
            if ins.keyword != "COPY" or not src_stage_ref:
                continue
            words = ins.exec_form if ins.exec_form is not None else ins.args.split()
            if len(words) < 2:
                continue
            srcs, dest = words[:-1], words[-1]
            src_site = next((s for p in srcs if (s := site_packages(p))), None)
            dest_site = site_packages(dest)
            if src_site and dest_site and src_site[1] != dest_site[1]:
                yield Hit(
                    ins.line,
                    f"copies python{src_site[1]} packages into a python{dest_site[1]} path",
                )
                continue
            target = dest_site or src_site
            if target is None or dest_py is None:
                continue
            prefix, version = target
            if dest_py.version and version != dest_py.version:
                yield Hit(
                    ins.line,
                    f"copies python{version} site-packages into a stage whose base "
                    f"({st.resolved}) has python{dest_py.version}",
                )
            elif prefix in _SYSTEM_PREFIXES and prefix != dest_py.prefix:
                yield Hit(
                    ins.line,
                    f"copies site-packages to {prefix} but the base ({st.resolved}) keeps "
                    f"Python under {dest_py.prefix}",
                )


_JUPYTER_TOKEN = re.compile(
    r"--(NotebookApp|ServerApp|IdentityProvider|LabApp)\.(token|password)=(''|\"\"|$|\s)"
)


@rule(
    "TS112",
    "jupyter-insecure",
    "error",
    "Jupyter with an empty token/password or --allow-root gives anyone on the network a "
    "root shell.",
    "Keep the token (or set a password hash), run as a non-root USER, drop --allow-root.",
)
def jupyter(df: Dockerfile) -> Iterator[Hit]:
    for ins in df.instructions:
        if ins.keyword not in ("CMD", "ENTRYPOINT", "RUN"):
            continue
        words = ins.exec_form if ins.exec_form is not None else [ins.text]
        text = " ".join(w if w else "''" for w in words)
        if "jupyter" not in text and "notebook" not in text:
            continue
        if "--allow-root" in text:
            yield Hit(ins.line, "starts Jupyter with --allow-root")
        if _JUPYTER_TOKEN.search(text + " ") or re.search(r"\.(token|password)=\s*$", text):
            yield Hit(ins.line, "starts Jupyter with an empty token or password")


def _torch_from_cuda_wheels(inst: Install) -> bool:
    if "torch" not in packages(inst):
        return False
    text = " ".join(inst.args)
    return "/whl/cpu" not in text and "+cpu" not in text


@rule(
    "TS113",
    "cuda-twice",
    "warning",
    "PyTorch's Linux wheels bundle CUDA/cuDNN (nvidia-* wheels); a CUDA runtime base "
    "stores the same libraries a second time (GBs).",
    "Use a plain base (python:3.x-slim, debian, or nvidia/cuda:*-base) under pip-installed "
    "torch, or use the base's own torch.",
)
def cuda_twice(df: Dockerfile) -> Iterator[Hit]:
    ref = base_ref(df, df.final)
    if not is_cuda_base(ref):
        return
    for ins in shipped_instructions(df, "RUN"):
        for inst in installs(ins):
            if inst.tool in ("pip", "uv") and _torch_from_cuda_wheels(inst):
                yield Hit(ins.line, f"pip installs CUDA torch wheels on {ref.raw}")
                break


@rule(
    "TS117",
    "cuda-wheel-on-cpu-base",
    "info",
    "Plain `pip install torch` on Linux x86_64 pulls the CUDA build (~2.5 GB of nvidia-* "
    "wheels); on a base without CUDA that is usually a CPU service paying for a GPU stack.",
    "For CPU inference use --index-url https://download.pytorch.org/whl/cpu (torch==X+cpu); "
    "for GPU name the CUDA index explicitly.",
)
def cuda_wheel_cpu_base(df: Dockerfile) -> Iterator[Hit]:
    ref = base_ref(df, df.final)
    if ref.unresolved or ref.name.endswith("nvidia/cuda") or "pytorch" in ref.name:
        return
    for ins in shipped_instructions(df, "RUN"):
        for inst in installs(ins):
            text = " ".join(inst.args) + " " + ins.text
            if (
                inst.tool in ("pip", "uv")
                and "torch" in packages(inst)
                and "download.pytorch.org" not in text
                and "+cpu" not in text
            ):
                yield Hit(ins.line, "installs torch from PyPI: the CUDA build, on a non-CUDA base")
                break


_SECRET_WORDS = frozenset({"PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIALS", "PRIVATE"})
_KEY_PREFIX = frozenset({"API", "ACCESS", "SECRET", "PRIVATE", "AUTH"})


def _secret_name(name: str) -> bool:
    parts = [p for p in re.split(r"[_\-.]", name.upper()) if p]
    if any(p in _SECRET_WORDS for p in parts):
        return True
    if "APIKEY" in parts:
        return True
    return any(a in _KEY_PREFIX and b == "KEY" for a, b in zip(parts, parts[1:], strict=False))


@rule(
    "TS114",
    "secret-in-env",
    "error",
    "ENV and ARG values are stored in the image config and history; anyone who pulls reads them.",
    "Pass secrets at run time (env, mounted files) or with RUN --mount=type=secret at build time.",
)
def secrets(df: Dockerfile) -> Iterator[Hit]:
    for ins in df.instructions:
        pairs: list[tuple[str, str | None]]
        if ins.keyword == "ENV":
            pairs = [(k, v) for k, v in parse_env(ins.args)]
        elif ins.keyword == "ARG":
            pairs = parse_arg(ins.args)
        else:
            continue
        for name, value in pairs:
            if not _secret_name(name):
                continue
            if ins.keyword == "ENV" and (not value or value.startswith("$")):
                continue  # ENV X=$X copies a build arg: the ARG line is the finding
            yield Hit(ins.line, f"{ins.keyword} {name} holds a secret in the image metadata")


@rule(
    "TS115",
    "add-url",
    "warning",
    "ADD <url> downloads without a checksum and cannot be cached or verified.",
    "Use ADD --checksum=sha256:... or RUN curl with a sha256sum check (or COPY a vendored file).",
)
def add_url(df: Dockerfile) -> Iterator[Hit]:
    for ins in df.instructions:
        if ins.keyword != "ADD" or ins.flag("checksum"):
            continue
        words = ins.exec_form if ins.exec_form is not None else ins.args.split()
        if any(w.startswith(("http://", "https://")) for w in words[:-1]):
            yield Hit(ins.line, "ADD of a URL without --checksum")


def _only_ownership(ins: Instruction) -> bool:
    cmds = run_commands(ins)
    return (
        bool(cmds)
        and all(c.name in ("chown", "chmod") for c in cmds)
        and any(c.name == "chown" and ("-R" in c.argv or "--recursive" in c.argv) for c in cmds)
    )


@rule(
    "TS116",
    "chown-layer",
    "warning",
    "A `RUN chown -R` after COPY rewrites every file into a new layer: the data is stored twice.",
    "Use COPY --chown=UID:GID (or --chmod) instead of a separate RUN chown -R.",
)
def chown_layer(df: Dockerfile) -> Iterator[Hit]:
    for stage in df.stages:
        copied = False
        for ins in stage.instructions:
            if ins.keyword in ("COPY", "ADD"):
                copied = True
            elif ins.keyword == "RUN" and copied and _only_ownership(ins):
                yield Hit(ins.line, "RUN chown -R after COPY duplicates the copied files")


# Keep the registry in id order (reports, SARIF rule indexes, docs).
_ordered = sorted(RULES.items())
RULES.clear()
RULES.update(_ordered)
