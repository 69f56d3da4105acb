from __future__ import annotations

from pathlib import Path

import pytest

from torchslim.deps.pipconf import IndexSettings
from torchslim.deps.requirements import parse_requirements, read_requirements
from torchslim.errors import ConfigError


def test_includes_comments_continuations_and_options(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.txt").write_text("numpy>=1.26  # comment\n-c ../cons.txt\n")
    (tmp_path / "cons.txt").write_text("numpy<3\n")
    (tmp_path / "wheels").mkdir()
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# top comment\n"
        "--index-url https://mirror.example/simple\n"
        "--extra-index-url=https://extra.example/simple\n"
        "-f wheels\n"
        "-r sub/base.txt\n"
        "fastapi[standard] >= 0.100 \\\n"
        "    ; python_version >= '3.10'\n"
        "uvicorn==0.30.0 --hash=sha256:abc\n"
        "\n"
    )
    assert parse_requirements(req) == [
        "numpy>=1.26",
        "fastapi[standard] >= 0.100     ; python_version >= '3.10'",
        "uvicorn==0.30.0",
    ]
    parsed = read_requirements(req)
    assert parsed.constraint_files == ((tmp_path / "cons.txt").resolve(),)
    assert parsed.find_links == (str((tmp_path / "wheels").resolve()),)
    merged = parsed.apply(
        IndexSettings(index_url="https://conf/simple", extra_index_urls=("https://conf-x/simple",))
    )
    # pip: a file's --index-url replaces the configured index and its extras
    assert merged.index_url == "https://mirror.example/simple"
    assert merged.extra_index_urls == ("https://extra.example/simple",)
    assert str((tmp_path / "cons.txt").resolve()) in merged.constraints


def test_garbage_line_names_file_and_line(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("fastapi\n# ok\nthis is not a requirement!!\n")
    with pytest.raises(ConfigError, match=r"requirements\.txt:3: invalid requirement") as exc:
        parse_requirements(req)
    assert "\n" not in str(exc.value)


def test_unknown_option_editable_and_missing_include(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("--frobnicate\n")
    with pytest.raises(ConfigError, match=r"r\.txt:1: unsupported option '--frobnicate'"):
        parse_requirements(req)
    req.write_text("-e git+https://example.invalid/pkg.git#egg=pkg\n")
    with pytest.raises(ConfigError, match="r.txt:1: editable requirement"):
        parse_requirements(req)
    req.write_text("torch==2.13.0\n-e ./pkg\n--editable=.\n")  # local: a normal install
    parsed = read_requirements(req)
    assert [r.text for r in parsed.requirements] == ["torch==2.13.0", "./pkg", "."]
    assert parsed.notes == (
        "r.txt:2: -e ./pkg is installed as a normal package (an image has no source tree to "
        "link to)",
        "r.txt:3: -e . is installed as a normal package (an image has no source tree to link to)",
    )
    req.write_text("-r missing.txt\n")
    with pytest.raises(ConfigError, match="missing.txt does not exist"):
        parse_requirements(req)
    req.write_text("-r r.txt\n")
    with pytest.raises(ConfigError, match="include each other"):
        parse_requirements(req)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_a_byte_order_mark_names_the_encoding(tmp_path: Path, encoding: str) -> None:
    """`pip freeze > requirements.txt` in PowerShell writes UTF-16 with a BOM."""
    req = tmp_path / "requirements.txt"
    data = "torch==2.13.0\r\nfastapi  # the API\r\n".encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    req.write_bytes(data)
    assert parse_requirements(req) == ["torch==2.13.0", "fastapi"]
