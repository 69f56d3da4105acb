"""What ``torchslim init`` prints: every choice with its source, then the notes."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from torchslim.project.init import InitPlan
from torchslim.project.initwrite import toml_value


def render_init(plan: InitPlan, written: Path, console: Console) -> None:
    """One line per choice (written ones first), so nothing is cut on a narrow terminal."""
    console.print(f"wrote {written}", soft_wrap=True)
    for choice in sorted(plan.choices, key=lambda c: not c.written):
        if choice.written:
            value = escape(toml_value(choice.value))
            console.print(f"  [bold]{choice.key}[/] = {value}  [dim]← {escape(choice.source)}[/]",
                          soft_wrap=True)  # fmt: skip
        else:
            console.print(
                f"  [dim]{choice.key}: default ({escape(choice.source)})[/]", soft_wrap=True
            )
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)


__all__ = ["render_init"]
