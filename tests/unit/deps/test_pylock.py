"""Lock reading, graph parsing, uv error translation and the audit, without network."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from torchslim.deps.audit import audit, format_audit
from torchslim.deps.lock import Lock, LockedWheel, Target, parse_graph, read_lock, uv_error
from torchslim.errors import ConfigError, NetworkError, ResolveError

H = "a" * 64
U = "https://x/pydantic_core-2.50.5-cp311-cp311"
PYLOCK = f"""
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.11"

[[packages]]
name = "pydantic-core"
version = "2.50.5"
wheels = [
  {{ url = "{U}-manylinux_2_17_x86_64.whl", hashes = {{ sha256 = "{H}" }} }},
  {{ url = "{U}-manylinux_2_17_aarch64.whl", hashes = {{ sha256 = "{"b" * 64}" }} }},
  {{ url = "{U}-musllinux_1_2_x86_64.whl", hashes = {{ sha256 = "{"c" * 64}" }} }},
]

[[packages]]
name = "pywin32"
version = "1"
marker = "sys_platform == 'win32'"
wheels = [{{ url = "https://x/pywin32-1-cp311-cp311-win_amd64.whl", hashes = {{ sha256 = "{H}" }}}}]
"""


def test_read_lock_picks_the_target_wheel(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text(PYLOCK)
    amd = read_lock(path, Target(arch="x86_64"))
    arm = read_lock(path, Target(arch="aarch64"))
    assert [w.name for w in amd.packages] == ["pydantic-core"]  # win32 marker skipped
    assert amd.packages[0].filename.endswith("manylinux_2_17_x86_64.whl")
    assert arm.packages[0].filename.endswith("manylinux_2_17_aarch64.whl")
    assert arm.packages[0].sha256 == "b" * 64
    with pytest.raises(ResolveError, match="no wheel for linux/amd64"):
        read_lock(path, Target(glibc="2.12"))


def test_read_lock_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_lock(tmp_path / "nope.toml")
    bad = tmp_path / "pylock.toml"
    bad.write_text("lock-version = [\n")
    with pytest.raises(ConfigError, match=r"pylock\.toml: not a readable"):
        read_lock(bad)


def test_target_strings() -> None:
    assert Target().uv_platform == "x86_64-manylinux_2_36"
    assert Target.from_platform("linux/arm64").uv_platform == "aarch64-manylinux_2_36"
    with pytest.raises(ConfigError):
        Target(arch="riscv64")
    # uv knows manylinux_2_17, _2_28 and _2_31.._2_40: a glibc between or above is clamped down.
    assert Target(python="3.13", glibc="2.41").uv_platform == "x86_64-manylinux_2_40"
    assert Target(glibc="2.30").uv_platform == "x86_64-manylinux_2_28"
    assert Target(glibc="2.17").uv_platform == "x86_64-manylinux_2_17"
    with pytest.raises(ConfigError, match=r"glibc 2\.12 .*glibc 2\.17 or newer"):
        _ = Target(glibc="2.12").uv_platform


def _uv_platforms() -> set[str]:
    """The ``--python-platform`` values the installed uv lists in its help."""
    from torchslim.deps.lock import _uv_cmd

    help_text = subprocess.run(
        [*_uv_cmd(), "pip", "compile", "--help"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(help_text.split())  # the help wraps at the terminal's width
    block = flat.split("--python-platform <PYTHON_PLATFORM>", 1)[1]
    values = block.split("possible values:", 1)[1].split("]", 1)[0]
    return {v.strip() for v in values.split(",")}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_installed_uv_accepts_every_platform_we_pass(arch: str) -> None:
    listed = _uv_platforms()
    for minor in range(17, 46):  # every glibc a base may have, today's and tomorrow's
        assert Target(arch=arch, glibc=f"2.{minor}").uv_platform in listed, minor


def test_the_installed_uv_locks_for_a_debian_13_target(tmp_path: Path) -> None:
    """Python 3.13 on trixie (glibc 2.41): uv itself takes the platform we pass it."""
    from torchslim.deps.lock import _uv_cmd

    empty = tmp_path / "requirements.txt"
    empty.write_text("")
    target = Target(python="3.13", glibc="2.41")
    proc = subprocess.run(
        [*_uv_cmd(), "--no-config", "--offline", "--no-python-downloads", "pip", "compile"]
        + [str(empty), "--python-version", target.python, "--python-platform", target.uv_platform],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr


GRAPH = """\
coverage==7.17.4
    # via pytest-cov
fastapi==0.165.0
    # via -r /src/app/requirements.txt
pluggy==1.7.0
    # via
    #   pytest
    #   pytest-cov
pytest==9.2.0
    # via pytest-cov
pytest-cov==7.1.0
    # via -r /src/app/requirements.txt
torch==2.13.0+cpu
    # via
    #   -c /etc/xdg/pip/constraints.txt
    #   -r /tmp/x/torchslim-extra.txt
"""


def test_graph_and_audit_chain() -> None:
    labels = {"/src/app/requirements.txt": "requirements.txt", "/tmp/x/torchslim-extra.txt": "cfg"}
    pins, parents = parse_graph(GRAPH, labels)
    assert pins["torch"] == "2.13.0+cpu"
    assert parents["pluggy"] == ("pytest", "pytest-cov")
    assert parents["torch"] == ("-c constraints.txt", "cfg")
    wheels = tuple(LockedWheel(n, v, f"{n}.whl", "u", H, None) for n, v in pins.items())
    findings = {f.package: f for f in audit(Lock(wheels, parents, Target()))}
    assert set(findings) == {"coverage", "pytest", "pytest-cov"}
    assert findings["pytest"].chain == ("pytest", "pytest-cov", "-r requirements.txt")
    assert findings["pytest-cov"].chain == ("pytest-cov", "-r requirements.txt")
    lines = format_audit(list(findings.values()))
    assert any("pytest (test runner) ← pytest-cov ← -r requirements.txt" in ln for ln in lines)


def test_uv_errors_become_one_line() -> None:
    refused = (
        "error: Request failed after 3 retries in 6.9s\n"
        "  cause: Failed to fetch: http://127.0.0.1:9/simple/pytest-cov/\n"
        "  cause: Connection refused (os error 111)\n"
    )
    err = uv_error(refused, Target())
    assert isinstance(err, NetworkError)
    assert "http://127.0.0.1:9/simple" in str(err) and "PIP_INDEX_URL" in str(err)
    platform = (
        "error: No solution found when resolving dependencies\n"
        "  cause: Because torch==2.13.0+cpu has no wheels with a matching platform tag (e.g., "
        "`manylinux_2_36_aarch64`) and you require torch==2.13.0+cpu, we can conclude that your "
        "requirements are unsatisfiable.\n\n"
        "hint: Wheels are available for `torch` (v2.13.0+cpu) on the following platform: "
        "`manylinux_2_28_x86_64`\n"
    )
    err = uv_error(platform, Target(arch="aarch64"))
    assert isinstance(err, ResolveError) and "\n" not in str(err)
    assert "no wheel of torch v2.13.0+cpu for linux/arm64 cp311" in str(err)
    assert "manylinux_2_28_x86_64" in str(err)
    # A warning's causes before the error (uv failing to fetch a managed Python) are not why.
    abi = (
        "warning: A managed Python download is available for Python 3.13, but an error "
        "occurred when attempting to download it.\n"
        "  cause: Request failed after 3 retries in 12.0s\n"
        "error: No solution found when resolving dependencies\n"
        "  cause: Because torch==2.13.0+cpu has no wheels with a matching Python ABI tag (e.g., "
        "`cp313`) and you require torch==2.13.0+cpu, we can conclude that your requirements "
        "are unsatisfiable.\n\n"
        "hint: You require CPython 3.13 (`cp313`), but we only found wheels for `torch` "
        "(v2.13.0+cpu) with the following Python ABI tag: `cp311`\n"
    )
    err = uv_error(abi, Target(python="3.13", glibc="2.41"))
    assert isinstance(err, ResolveError) and "\n" not in str(err)
    assert "Request failed" not in str(err)
    assert "torch==2.13.0+cpu has no wheels with a matching Python ABI tag" in str(err)
    assert "no cp313 wheel of torch v2.13.0+cpu; wheels exist only for cp311" in str(err)


def test_a_lock_sha256_that_is_not_hex_is_a_config_error(tmp_path: Path) -> None:
    from torchslim.deps.pylock import parse_lock

    text = (
        'lock-version = "1.0"\ncreated-by = "t"\n\n[[packages]]\nname = "demo"\n'
        'version = "1.0"\n\n[[packages.wheels]]\nname = "demo-1.0-py3-none-any.whl"\n'
        'url = "https://example.invalid/demo-1.0-py3-none-any.whl"\n'
        'hashes = {sha256 = "../../../../etc/passwd"}\n'
    )
    target = Target(python="3.11", arch="x86_64", glibc="2.36")
    with pytest.raises(ConfigError, match="invalid sha256"):
        parse_lock(text, tmp_path / "pylock.toml", target)


RUNTIME_GRAPH = """\
gradio==4.44.1
    # via -r /src/app/requirements.txt
ruff==0.6.9
    # via
    #   -r /src/app/requirements.txt
    #   gradio
app-lib==1.0
    # via -r /src/app/requirements.txt
pytest-timeout==2.3.1
    # via app-lib
pytest==8.3.3
    # via pytest-timeout
black==24.8.0
    # via -r /src/app/requirements.txt
"""


def test_a_dev_tool_that_a_prod_package_requires_is_named_with_its_requirer() -> None:
    from torchslim.deps.audit import runtime_tools

    pins, parents = parse_graph(RUNTIME_GRAPH, {"/src/app/requirements.txt": "requirements.txt"})
    wheels = tuple(LockedWheel(n, v, f"{n}.whl", "u", H, None) for n, v in pins.items())
    lock = Lock(wheels, parents, Target())
    findings = audit(lock)
    assert [f.package for f in findings] == ["black"]  # nothing requires black: truly dev
    tools = {t.package: t.required_by for t in runtime_tools(lock)}
    assert tools == {
        "ruff": ("gradio",),
        "pytest-timeout": ("app-lib",),
        "pytest": ("pytest-timeout", "app-lib"),
    }
    lines = format_audit(findings, runtime_tools(lock))
    assert "ruff (linter and formatter) stays: gradio requires it at run time" in lines
    assert any(
        "pytest (test runner) stays: pytest-timeout ← app-lib requires" in ln for ln in lines
    )
    assert not any("ruff" in ln and "move" in ln for ln in lines)
    assert sum("move them to the dev requirements" in ln for ln in lines) == 1
    only_needed = format_audit([], runtime_tools(lock))
    assert only_needed[0] == "no development-only packages in the production requirements"
