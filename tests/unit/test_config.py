"""ProjectConfig: defaults, validation, and one-line errors naming file and key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from torchslim.config import duration_ns, load_config
from torchslim.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-torch"


def write(tmp: Path, text: str) -> Path:
    (tmp / "app").mkdir(exist_ok=True)
    (tmp / "requirements.txt").write_text("fastapi\n")
    (tmp / "torchslim.toml").write_text(text)
    return tmp


MINIMAL = 'name = "svc"\nversion = "1.0"\ntorch = "2.13.0"\napp = "app"\ncmd = "python3 -m app"\n'


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.name == "hello-torch"
    assert cfg.user == 1000
    assert cfg.model == ["model/model.pt"]
    assert cfg.healthcheck.retries == 3
    assert cfg.root == EXAMPLE


def test_defaults_and_string_forms(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.cmd == ["python3", "-m", "app"]
    assert cfg.requirements == ["requirements.txt"]
    assert (cfg.base, cfg.profile, cfg.variant, cfg.python) == (
        "debian",
        "inference",
        "cpu",
        "3.11",
    )


def test_pyproject_table(tmp_path: Path) -> None:
    write(tmp_path, "")
    (tmp_path / "torchslim.toml").unlink()
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n[tool.torchslim]\n" + MINIMAL)
    assert load_config(tmp_path).name == "svc"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("colour = 'blue'\n", "unknown key `colour`"),
        ("port = 'eighty'\n", "key `port`"),
        ("user = 0\n", "key `user`"),
        ("variant = 'rocm'\n", "key `variant`"),
        ("platform = 'windows/amd64'\n", "key `platform`"),
        ("[healthcheck]\ninterval = 'soon'\n", "key `healthcheck.interval`"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path: Path, extra: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, MINIMAL + extra))
    msg = str(err.value)
    assert needle in msg and "torchslim.toml" in msg and "\n" not in msg


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing required key `torch`"):
        load_config(write(tmp_path, MINIMAL.replace('torch = "2.13.0"\n', "")))


def test_malformed_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "name = \n"))


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="torchslim.toml: not found"):
        load_config(tmp_path)


def test_missing_files_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key `model`"):
        load_config(write(tmp_path, MINIMAL + 'model = "nope.pt"\n'))


def test_durations() -> None:
    assert duration_ns("30s") == 30_000_000_000
    assert duration_ns("500ms") == 500_000_000
    with pytest.raises(ValueError):
        duration_ns("30")


@pytest.mark.parametrize("text", ["", "name = \n", "name = 'x'\n"])
def test_cli_bad_config_is_one_line(tmp_path: Path, text: str) -> None:
    if text:
        write(tmp_path, text)
    exe = shutil.which("torchslim") or sys.executable
    args = [exe] if exe != sys.executable else [exe, "-m", "torchslim.cli"]
    proc = subprocess.run(
        [*args, "build", str(tmp_path), "--output", f"oci:{tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
