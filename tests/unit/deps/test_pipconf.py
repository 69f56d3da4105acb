from __future__ import annotations

import os
from pathlib import Path

import pytest

from torchslim.deps.pipconf import IndexSettings, default_config_files, load_pip_settings
from torchslim.errors import ConfigError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_later_file_wins_and_command_section_beats_global(tmp_path: Path) -> None:
    first = _write(
        tmp_path / "global.conf",
        "[global]\nindex-url = https://a.example/simple\n[install]\ncert = /install/ca.pem\n",
    )
    second = _write(
        tmp_path / "user.conf",
        "[global]\nindex-url = https://b.example/simple\ncert = /global/ca.pem\n"
        "extra-index-url = https://x.example/simple\n   https://y.example/simple\n",
    )
    s = load_pip_settings({}, [first, second])
    assert s.index_url == "https://b.example/simple"
    # pip: [install] from any file beats [global] from any file
    assert s.cert == "/install/ca.pem"
    assert s.extra_index_urls == ("https://x.example/simple", "https://y.example/simple")


def test_env_vars_win_and_split_on_whitespace(tmp_path: Path) -> None:
    conf = _write(tmp_path / "pip.conf", "[global]\nfind-links = /a\nno-index = false\n")
    env = {"PIP_FIND_LINKS": "/b  /c", "PIP_NO_INDEX": "yes", "PIP_INDEX_URL": "https://e/simple"}
    s = load_pip_settings(env, [conf])
    assert s.find_links == ("/b", "/c")
    assert s.no_index is True
    assert s.index_url == "https://e/simple"
    assert "--no-index" in s.uv_args()
    assert "--index-url" not in s.uv_args()


def test_underscore_keys_and_missing_files(tmp_path: Path) -> None:
    conf = _write(tmp_path / "pip.conf", "[global]\nindex_url = https://u/simple\n")
    s = load_pip_settings({}, [tmp_path / "absent.conf", conf])
    assert s.index_url == "https://u/simple"


def test_default_files_follow_pip(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_DIRS": "/etc/xdg", "VIRTUAL_ENV": "/venv"}
    files = default_config_files(env)
    assert files == [
        Path("/etc/xdg/pip/pip.conf"),
        Path("/etc/pip.conf"),
        tmp_path / ".pip/pip.conf",
        tmp_path / ".config/pip/pip.conf",
        Path("/venv/pip.conf"),
    ]
    assert default_config_files({**env, "PIP_CONFIG_FILE": os.devnull}) == []
    own = _write(tmp_path / "own.conf", "[global]\n")
    with_env = default_config_files({**env, "PIP_CONFIG_FILE": str(own)})
    assert tmp_path / ".pip/pip.conf" not in with_env  # user files skipped, as pip does
    assert with_env[-1] == own


def test_devnull_disables_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _write(home / ".config/pip/pip.conf", "[global]\nindex-url = https://nope/simple\n")
    env = {
        "HOME": str(home),
        "XDG_CONFIG_DIRS": str(tmp_path / "none"),
        "PIP_CONFIG_FILE": os.devnull,
    }
    assert load_pip_settings(env).index_url is None
    del env["PIP_CONFIG_FILE"]
    assert load_pip_settings(env).index_url == "https://nope/simple"


def test_malformed_file_names_file_and_line(tmp_path: Path) -> None:
    bad = _write(tmp_path / "pip.conf", "[global]\nindex-url = https://ok/simple\nthis is junk\n")
    with pytest.raises(ConfigError, match=r"pip\.conf:3: malformed") as exc:
        load_pip_settings({}, [bad])
    assert "\n" not in str(exc.value)
    headless = _write(tmp_path / "h.conf", "index-url = x\n")
    with pytest.raises(ConfigError, match=r"h\.conf:1:.*\[global\]"):
        load_pip_settings({}, [headless])


def test_uv_translation(tmp_path: Path) -> None:
    s = IndexSettings(
        index_url="https://i/simple",
        extra_index_urls=("file:///opt/pypi/simple",),
        find_links=("wheels",),
        cert="/etc/ssl/certs/ca-certificates.crt",
        constraints=("/c.txt",),
        trusted_hosts=("h.local",),
    )
    args = s.uv_args()
    assert args[:2] == ["--index-url", "https://i/simple"]
    assert args[2:4] == ["--extra-index-url", "file:///opt/pypi/simple"]
    assert "unsafe-best-match" in args  # pip's "best version across all indexes"
    assert ["--find-links", str(Path("wheels").absolute())] == args[6:8]
    assert args[8:10] == ["--constraint", "/c.txt"]
    assert args[10:12] == ["--allow-insecure-host", "h.local"]
    assert s.uv_env() == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}
    assert IndexSettings().uv_env() == {"UV_SYSTEM_CERTS": "1"}
