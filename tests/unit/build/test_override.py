"""--torch / --variant / --python / --platform override the project for one build: its torch
pins are replaced in the build's own space, torchvision/torchaudio follow, the project's files
are never written, and every message says where each value came from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from support.fakebuild import pylock
from support.projects import write_tree
from support.wheels import make_wheel

import torchslim.build.lock as lock_step
from torchslim.build.plan import BuildOptions, Plan, override_locks, plan_build
from torchslim.cache import BlobStore
from torchslim.config import QuietSteps, load_config
from torchslim.deps.lock import Target
from torchslim.deps.pipconf import IndexSettings
from torchslim.deps.requirements import read_requirements
from torchslim.errors import ConfigError
from torchslim.project.items import ProjectRequirements, RequirementItem
from torchslim.project.override import override_torch
from torchslim.torchmeta import TorchBuild, family_release

# The issue's project: torch pinned in requirements.txt, CUDA in the config.
CONFIG = (
    'name = "svc"\nversion = "1.0"\ntorch = "2.14.1"\nvariant = "cu130"\n'
    'requirements = "requirements.txt"\ncmd = ["python3", "-m", "app"]\n'
    'base = "python:3.11-slim"\n'
)


def project(root: Path, requirements: str, **files: str) -> Path:
    write_tree(root, {"torchslim.toml": CONFIG, "requirements.txt": requirements, **files})
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the project, by its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def plan_for(root: Path, **opts: object) -> Plan:
    cfg = load_config(root)
    return plan_build(cfg, BuildOptions(**opts), IndexSettings(), environ={}).plans[0]  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))


def test_the_issues_build_plans_with_the_command_lines_torch(tmp_path: Path) -> None:
    root = project(tmp_path / "svc", "torch==2.14.1\ntorchvision==0.29.1\nfastapi\n")
    before = snapshot(root)
    plan = plan_for(root, torch="2.13.0", variant="cpu")
    assert plan.torch.requirement == "torch==2.13.0+cpu"
    prod = {i.name: (i.text, i.source) for i in plan.requirements.prod}
    assert prod["torch"] == ("torch==2.13.0+cpu", "requirements.txt:1")
    assert prod["torchvision"] == ("torchvision==0.28.0", "requirements.txt:2")
    assert prod["fastapi"] == ("fastapi", "requirements.txt:3")
    origin = "--torch 2.13.0 (command line) and --variant cpu (command line)"
    assert f"torch==2.14.1 in requirements.txt:1: torch==2.13.0+cpu for this build ({origin})" in (
        plan.requirements.notes
    )
    assert plan.lock_path.parent == override_locks(root)
    assert snapshot(root) == before


def test_only_the_overridden_value_stops_being_checked(tmp_path: Path) -> None:
    """--variant alone: the pin's torch release must still agree with the config's."""
    root = project(tmp_path / "svc", "torch==2.12.0\n")
    with pytest.raises(ConfigError) as err:
        plan_for(root, variant="cpu")
    msg = str(err.value)
    assert msg.startswith(
        'torch==2.12.0 in requirements.txt:1 conflicts with torch = "2.14.1" '
        "(torchslim.toml: torch)"
    )
    assert "\n" not in msg
    plan = plan_for(root, torch="2.12.0", variant="cpu")
    assert [i.text for i in plan.requirements.prod] == ["torch==2.12.0+cpu"]


def test_a_value_equal_to_the_configs_is_no_override(tmp_path: Path) -> None:
    root = project(tmp_path / "svc", "torch==2.14.1\n")
    plan = plan_for(root, torch="2.14.1", variant="cu130", platform="linux/amd64")
    assert plan.lock_path == root / "pylock.toml"
    assert not plan.requirements.rewrites


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (
            {"torch": "2.9.0", "variant": "cu121"},
            "--torch 2.9.0 (command line) does not ship --variant cu121 (command line): "
            "choose --variant cpu or cu126 or cu128 or cu130",
        ),
        (
            {"variant": "cu126"},
            "torch 2.14.1 (torchslim.toml: torch) does not ship --variant cu126 (command line)",
        ),
        (
            {"python": "3.12"},
            "--python 3.12 (command line): the Debian base has no Python 3.12; "
            "choose --python 3.11 or 3.13",
        ),
        ({"python": "python3"}, "--python 'python3': expected a version such as 3.12"),
    ],
)
def test_messages_name_where_each_value_came_from(
    tmp_path: Path, opts: dict[str, str], message: str
) -> None:
    root = project(tmp_path / "svc", "torch==2.14.1\n")
    if "python" in opts:  # the Debian base decides which Pythons exist
        (root / "torchslim.toml").write_text(CONFIG.replace('base = "python:3.11-slim"\n', ""))
    with pytest.raises(ConfigError) as err:
        plan_for(root, **opts)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_python_and_platform_lock_in_the_builds_own_space(tmp_path: Path) -> None:
    root = project(tmp_path / "svc", "torch==2.14.1\n")
    (root / "torchslim.toml").write_text(CONFIG.replace('base = "python:3.11-slim"\n', ""))
    py = plan_for(root, python="3.13")
    assert (py.cfg.python, py.debian.suite) == ("3.13", "trixie")
    assert py.lock_path == override_locks(root) / "pylock.python3.13.toml"
    assert py.overrides.origin("python") == "--python 3.13 (command line)"
    arm = plan_for(root, platform="linux/arm64")
    assert arm.lock_path == override_locks(root) / "pylock.linux-arm64.toml"
    assert arm.overrides.origin("torch") == "torchslim.toml: torch"


@pytest.mark.parametrize(
    ("pin", "matching"),
    [
        (
            "torchvision @ https://download.pytorch.org/whl/cu130/torchvision-0.29.1-cp311-cp311-"
            "manylinux_2_28_x86_64.whl",
            "torchvision==0.28.0",
        ),  # fmt: skip
        ("torchaudio==2.14.1 ; sys_platform == 'linux'", None),
    ],
)
def test_a_companion_that_cannot_follow_is_refused_in_one_line(
    tmp_path: Path, pin: str, matching: str | None
) -> None:
    root = project(tmp_path / "svc", f"torch==2.14.1\n{pin}\n")
    torch = "2.13.0" if matching else "2.4.1"  # 2.4: a release the torch table does not know
    with pytest.raises(ConfigError) as err:
        plan_for(root, torch=torch)
    msg = str(err.value)
    assert msg.startswith(f"{pin} in requirements.txt:2 cannot follow torch {torch} ")
    assert f"(--torch {torch} (command line))" in msg and "\n" not in msg
    assert (matching or "the torchaudio 2.4 release") in msg


def test_companions_move_to_the_pair_from_the_torch_table() -> None:
    assert family_release("torchvision", "2.13.0") == "0.28.0"
    assert family_release("torchaudio", "2.9.1") == "2.9.1"
    assert family_release("torchvision", "2.4.1") is None  # not in the table
    items = (
        RequirementItem("torchvision>=0.20", "pyproject.toml [project].dependencies"),
        RequirementItem("torchaudio==2.14.1+cu130", "environment.yml:6"),
    )
    out = override_torch(ProjectRequirements(prod=items), TorchBuild("2.13.0", "cpu"), "--torch")
    # A range that allows the pair stays; an exact pin moves, its local tag to the variant.
    assert [i.text for i in out.prod] == ["torchvision>=0.20", "torchaudio==2.13.0+cpu"]


def test_a_lock_made_for_another_torch_leaves_torchs_own_pins_to_the_new_one() -> None:
    """uv.lock pins torch 2.14.1 and what it brought: those are re-resolved for the build."""

    def pinned(name: str, version: str, via: str | None = None) -> RequirementItem:
        return RequirementItem(f"{name}=={version}", "uv.lock", "pinned", version=version, via=via)

    items = (
        pinned("fastapi", "0.115.0"),
        pinned("torch", "2.14.1"),
        pinned("torchvision", "0.29.1"),
        pinned("nvidia-cublas", "13.0.0.19", via="torch"),
        pinned("sympy", "1.13.3", via="torch"),
        pinned("mpmath", "1.3.0", via="sympy"),
        pinned("pillow", "11.0.0", via="torchvision"),
        pinned("starlette", "0.41.0", via="fastapi"),
    )
    reqs = ProjectRequirements(prod=items, kind="pinned", source="uv.lock")
    out = override_torch(reqs, TorchBuild("2.13.0", "cu130"), "--torch 2.13.0 (command line)")
    assert [i.text for i in out.prod] == [
        "fastapi==0.115.0",
        "torch==2.13.0",
        "torchvision==0.28.0",
        "starlette==0.41.0",
    ]
    assert "nvidia-cublas==13.0.0.19 in uv.lock: left to torch==2.13.0 (--torch 2.13.0 " in (
        "\n".join(out.notes)
    )


def test_environment_yml_and_pyproject_pins_follow(tmp_path: Path) -> None:
    conda = "dependencies:\n  - python=3.11\n  - pytorch=2.14.1\n  - pip\n  - pip:\n    - fastapi\n"
    root = project(tmp_path / "conda", "", **{"environment.yml": conda})
    (root / "requirements.txt").unlink()
    (root / "torchslim.toml").write_text(CONFIG.replace('requirements = "requirements.txt"\n', ""))
    plan = plan_for(root, torch="2.13.0", variant="cpu")
    torch = next(i for i in plan.requirements.prod if i.name == "torch")
    assert (torch.text, torch.source) == ("torch==2.13.0+cpu", "environment.yml:3")
    pyproject = (
        '[project]\nname = "svc"\nversion = "1"\ndependencies = ["torch>=2.14", "fastapi"]\n'
        '[dependency-groups]\ndev = ["pytest"]\n'
    )
    root = project(tmp_path / "pep621", "", **{"pyproject.toml": pyproject})
    (root / "requirements.txt").unlink()
    (root / "torchslim.toml").write_text(CONFIG.replace('requirements = "requirements.txt"\n', ""))
    plan = plan_for(root, torch="2.13.0")
    assert [i.text for i in plan.requirements.prod] == ["torch==2.13.0", "fastapi"]


# --- the lock step: uv reads the replaced pins from the build's own space ---------------------


def fake_uv(seen: list[list[str]], wheel: Path) -> object:
    """uv replaced: records the requirement lines it would read (following ``-r`` as uv does,
    from the files it is given) and locks the one wheel."""

    def resolve(reqs: Sequence[Path], target: Target, settings: object, **kw: object) -> None:
        lines = [r.text for f in reqs for r in read_requirements(f).requirements]
        seen.append(list(dict.fromkeys(lines)))
        out = kw["out"]
        assert isinstance(out, Path)
        out.write_text(pylock(wheel))

    return resolve


def lock_once(plan: Plan, tmp_path: Path) -> None:
    kw = {"glibc": "2.36", "base_pin": None, "store": BlobStore(tmp_path / "blobs")}
    lock_step.resolve(plan, lock_step.read(plan), steps=QuietSteps(), **kw)  # type: ignore[arg-type]


def test_the_lock_reads_replaced_pins_and_the_project_is_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = (
        "-r base.txt\n"
        "torch==2.14.1 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        "    # via -r requirements.in\n"
        "nvidia-cublas==13.0.0.19 \\\n    --hash=sha256:cc\n"
        "./localpkg\n"
    )
    root = project(
        tmp_path / "svc",
        compiled,
        **{
            "base.txt": "fastapi==0.115.0\ntorchvision==0.29.1\n",
            "localpkg/pyproject.toml": '[project]\nname = "localpkg"\nversion = "1"\n',
            "pylock.toml": "# the project's lock, made for torch 2.14.1\n",
        },
    )
    before = snapshot(root)
    seen: list[list[str]] = []
    wheel = make_wheel(tmp_path, name="torch", version="2.13.0")
    monkeypatch.setattr(lock_step, "uv_resolve", fake_uv(seen, wheel))
    plan = plan_for(root, torch="2.13.0", variant="cpu", relock=True)
    lock_once(plan, tmp_path)
    assert seen == [["fastapi==0.115.0", "torchvision==0.28.0", "torch==2.13.0+cpu", "./localpkg"]]
    assert snapshot(root) == before  # pylock.toml too: only --relock of the own target writes it
    assert plan.lock_path.is_file() and plan.lock_path.parent == override_locks(root)
    # The next build with the same override reads its own lock: uv is not asked again.
    lock_once(plan_for(root, torch="2.13.0", variant="cpu"), tmp_path)
    assert len(seen) == 1 and snapshot(root) == before


def test_the_projects_own_lock_is_not_read_for_another_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "svc", "torch==2.14.1\n")
    seen: list[list[str]] = []
    monkeypatch.setattr(
        lock_step, "uv_resolve", fake_uv(seen, make_wheel(tmp_path, name="torch", version="2.14.1"))
    )
    lock_once(plan_for(root), tmp_path)  # the config's own target: pylock.toml
    own = (root / "pylock.toml").read_bytes()
    monkeypatch.setattr(
        lock_step, "uv_resolve", fake_uv(seen, make_wheel(tmp_path, name="torch", version="2.13.0"))
    )
    lock_once(plan_for(root, torch="2.13.0"), tmp_path)
    assert seen == [["torch==2.14.1"], ["torch==2.13.0"]]
    assert (root / "pylock.toml").read_bytes() == own
