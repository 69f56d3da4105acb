"""The one error handler: one line, the message as written, never a crash of its own."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from torchslim.cli import main
from torchslim.cli.app import CliSteps, friendly_errors
from torchslim.errors import BuildError, ConfigError


def _command(exc: BaseException) -> click.Command:
    @click.command()
    @friendly_errors
    def cmd() -> None:
        raise exc

    return cmd


@pytest.mark.parametrize(
    ("exc", "code", "shown"),
    [
        (ConfigError("key `name`: should match '^[a-z0-9][a-z0-9._-]*$'"), 2, "'^[a-z0-9]"),
        (BuildError("image user [/][bold]x"), 1, "image user [/][bold]x"),
        (BuildError("name \x1b]0;pwned\x07 here"), 1, "name \\x1b]0;pwned\\x07 here"),
        (BuildError("name\r\x1b[2K"), 1, "name\\x0d\\x1b[2K"),
        (RuntimeError("a bug\nover lines"), 70, "internal error: RuntimeError: a bug over lines"),
        (BuildError("from docker://bob:pw1234@host/x"), 1, "docker://bob:***@host/x"),
        (KeyError("[/]"), 70, "internal error: KeyError: '[/]'"),
    ],
)
def test_error_line(exc: BaseException, code: int, shown: str) -> None:
    result = CliRunner().invoke(_command(exc), [])
    assert result.exit_code == code
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and shown in lines[0], lines
    assert "pw1234" not in result.output and "\x1b" not in result.output


def test_a_message_whose_str_raises_still_exits_one_line() -> None:
    class Hostile(BuildError):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    result = CliRunner().invoke(_command(Hostile()), [])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "Traceback" not in result.output


def test_steps_print_names_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    console = Console(force_terminal=False, width=200)
    steps = CliSteps(console)
    steps.step("Opening base oci:/tmp/[/]x")
    steps.warn("env sets PATH to '[bold]\x1b[31m'")
    out = capsys.readouterr().out
    assert "Opening base oci:/tmp/[/]x" in out
    assert "warning: env sets PATH to '[bold]\\x1b[31m'" in out


@pytest.mark.parametrize("command", [["analyze", "X"], ["diff", "X", "Y"]])
def test_analyze_and_diff_take_tls_verify(command: list[str], monkeypatch: Any) -> None:
    import torchslim.analyze as analyze_pkg

    seen: list[bool] = []

    def fake_open(image: str, *, tls_verify: bool = True) -> Any:
        seen.append(tls_verify)
        raise BuildError("stop here")

    monkeypatch.setattr(analyze_pkg, "open_image", fake_open)
    result = CliRunner().invoke(main, [*command, "--tls-verify=false"])
    assert result.exit_code == 1 and seen == [False], result.output


def test_several_configuration_errors_keep_one_line_each() -> None:
    exc = ConfigError("t.toml: 2 configuration errors:\n  key `a`: x\x1b\n  key `b`: y")
    result = CliRunner().invoke(_command(exc), [])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: t.toml: 2 configuration errors:",
        "  key `a`: x\\x1b",
        "  key `b`: y",
    ]


def test_a_level_out_of_range_is_one_line_before_anything_is_built() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "examples" / "hello-torch"
    args = ["build", str(example), "--compression", "zstd:chunked", "--compression-level", "40"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == [
        "error: --compression-level: level 40 is out of range for zstd:chunked; "
        "use 1 to 19 (default 3)"
    ], lines
