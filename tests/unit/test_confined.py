"""Paths a config names stay in the project; staged writes stay under their root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from torchslim.confined import ConfinedRoot, confine, exists, image_path
from torchslim.errors import BuildError, ConfigError


@dataclass
class Cfg:
    root: Path
    file: Path


@pytest.fixture
def cfg(tmp_path: Path) -> Cfg:
    root = tmp_path / "proj"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "model.pt").write_text("m")
    (root / "link").symlink_to("a/b/c")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    (root / "out").symlink_to(tmp_path / "outside")
    return Cfg(root, root / "torchslim.toml")


@pytest.mark.parametrize(
    ("rel", "why"),
    [
        ("/etc/passwd", "absolute path or climbs out"),
        ("../outside/secret", "absolute path or climbs out"),
        ("a/../../outside/secret", "absolute path or climbs out"),
        ("link/../../../model.pt", "absolute path or climbs out"),  # lexically out, really in
        ("out/secret", "leads outside the project"),
        ("~/x", "absolute path or climbs out"),
        ("", "is empty"),
        ("/".join(["a"] * 3000), "too long"),
    ],
)
def test_escapes_are_configuration_errors_naming_the_key(cfg: Cfg, rel: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as exc:
        confine(cfg, "model", rel)
    assert f"{cfg.file}: key `model`" in str(exc.value) and "\n" not in str(exc.value)


def test_paths_inside_resolve(cfg: Cfg) -> None:
    assert confine(cfg, "model", "./model.pt") == (cfg.root / "model.pt").resolve()
    assert confine(cfg, "app", ".") == cfg.root.resolve()
    assert confine(cfg, "model", "link/x.pt") == (cfg.root / "a/b/c/x.pt").resolve()
    assert image_path("./models//a.pt") == "models/a.pt"


def test_confined_root_writes_only_under_root(tmp_path: Path) -> None:
    root = ConfinedRoot(tmp_path / "stage")
    (tmp_path / "stage").mkdir()
    src = tmp_path / "src"
    src.write_bytes(b"data")
    assert root.copy_file(src, "app/m/x.bin", 0o600).read_bytes() == b"data"
    assert ((tmp_path / "stage/app/m/x.bin").stat().st_mode & 0o777) == 0o600
    for bad in ("../x", "/etc/x", "a/../../x", "a/\0b"):
        with pytest.raises(BuildError, match="refusing"):
            root.write_bytes(bad, b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "stage/link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BuildError, match="symlink"):
        root.write_bytes("link/x", b"x")
    (tmp_path / "stage/file-link").symlink_to(tmp_path / "elsewhere/target")
    with pytest.raises(BuildError, match="symlink"):
        root.copy_file(src, "file-link")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_exists_names_an_odd_path_instead_of_crashing(tmp_path: Path) -> None:
    assert not exists(tmp_path / "nope", "project")
    with pytest.raises(ConfigError, match="project .*too long"):
        exists(Path("/".join(["a"] * 3000)), "project")
