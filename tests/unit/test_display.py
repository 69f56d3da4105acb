"""Untrusted text prints as text: no markup obeyed, no escape sequence reaches a terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from torchslim.display import one_line, plain, safe, styled


def render(markup: object) -> str:
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, color_system=None, width=300).print(markup)
    return buf.getvalue().rstrip("\n")


@pytest.mark.parametrize(
    "text",
    ["[/]", "[bold]x[/bold]", "pattern ^[a-z0-9][a-z0-9._-]*$", "x\\[/]", "[link=x]y"],
)
def test_markup_in_untrusted_text_prints_verbatim(text: str) -> None:
    assert render(f"[bold]name:[/] {safe(text)}") == f"name: {text}"
    assert render(f"[dim]{safe(text)}[/] after") == f"{text} after"
    assert render(styled(text)) == text


def test_a_final_backslash_cannot_escape_the_markup_after_it() -> None:
    assert render(f"[dim]{safe('a' + chr(92))}[/] [bold]b[/]") == "a\\x5c b"


def test_control_characters_become_visible_escapes() -> None:
    hostile = "a\x1b]0;pwned\x07b\x1b[2Jc\rd\u202eevil\x9bx"
    shown = plain(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown
    assert "\u202e" not in shown and "\x9b" not in shown
    assert shown == "a\\x1b]0;pwned\\x07b\\x1b[2Jc\\x0dd\\u202eevil\\x9bx"
    assert "\x1b" not in render(styled(hostile))


def test_bytes_that_were_not_utf8_show_as_hex() -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert plain(name) == "caf\\xe9"


def test_one_line_folds_line_breaks() -> None:
    assert one_line("first\n  second\r\nthird\x1b") == "first second third\\x1b"


def test_a_hostile_str_does_not_break_the_output() -> None:
    class Bad:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert plain(Bad()) == "<Bad>"
