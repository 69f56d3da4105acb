"""The one output layer for text torchslim did not write: image contents, user paths, errors.

rich reads ``[...]`` as markup and a terminal obeys escape sequences, so a file name,
a config ``User`` or an error that quotes a path can restyle the output, crash the
printer (``[/]``) or drive the terminal (``ESC]…``). Such text is printed through
``plain`` (as a rich ``Text``, never parsed) or ``safe`` (inside markup).
"""

from __future__ import annotations

import re

from rich.markup import escape
from rich.text import Text

# C0, DEL, C1, the bidi controls that reorder what is shown (Trojan Source), BOM, and
# lone surrogates (bytes that were not UTF-8, kept by surrogateescape).
_UNSEEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ufeff\ud800-\udfff]"
)
_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _text(value: object) -> str:
    try:
        return value if isinstance(value, str) else str(value)
    except Exception:  # a hostile __str__ must not break the output
        return f"<{type(value).__name__}>"


def plain(value: object) -> str:
    """``value`` as text with every control character shown as an escape (``\\x1b``)."""
    return _UNSEEN.sub(_visible, _text(value))


def one_line(value: object) -> str:
    """``plain``, with line breaks folded into spaces first (an error is one line)."""
    return plain(_BREAKS.sub(" ", _text(value)).strip())


def lines(value: object) -> str:
    """``plain`` for each line: a message torchslim split into lines (several configuration
    errors, a failed proof's list) keeps them; ``\r`` and every other control shows."""
    return "\n".join(plain(line.rstrip()) for line in _text(value).split("\n")).strip()


def safe(value: object) -> str:
    """``plain`` text escaped for rich markup: to interpolate into a markup string.

    A final backslash would escape whatever markup follows it (or, escaped, show twice
    when nothing does), so it is shown as ``\x5c``.
    """
    text = plain(value)
    if text.endswith("\\"):
        text = text[:-1] + "\\x5c"
    return escape(text)


def styled(value: object, style: str = "") -> Text:
    """A table cell or line that rich prints as is (no markup), controls made visible."""
    return Text(plain(value), style=style)


__all__ = ["lines", "one_line", "plain", "safe", "styled"]
