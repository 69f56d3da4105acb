"""The command group, its one error handler and the progress display every command shares."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from torchslim import __version__
from torchslim.errors import TorchslimError

F = TypeVar("F", bound=Callable[..., Any])

# Off a terminal (CI logs, pipes) nothing is cut to 80 columns: tables keep their width.
WIDE = 1000


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else WIDE)


err_console = _console(stderr=True)
out_console = _console(stderr=False)


# Every command that talks to a registry takes the same switch.
tls_verify_option = click.option(
    "--tls-verify",
    type=bool,
    default=True,
    show_default=True,
    help="Verify registry TLS; false allows plain http (a loopback registry).",
)


def friendly_errors(fn: F) -> F:
    """One line on stderr and a non-zero exit instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TorchslimError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[bold red]error:[/] interrupted; nothing was written to the output")
            sys.exit(130)
        except Exception as exc:  # a bug: still one line unless asked for more
            if os.environ.get("TORCHSLIM_DEBUG"):
                raise
            err_console.print(
                f"[bold red]error:[/] internal error: {type(exc).__name__}: {exc} "
                "(rerun with TORCHSLIM_DEBUG=1 for the traceback and report it)",
                soft_wrap=True,
            )
            sys.exit(70)

    return wrapper  # type: ignore[return-value]


class CliSteps:
    """Build steps on stderr: progress bars on a terminal; off one (CI), a plain line when a
    download, upload or layer starts and when it is done."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.tasks: dict[str, TaskID] = {}
        self.plain: dict[str, int] = {}  # label -> bytes last reported (off a terminal)

    def __enter__(self) -> CliSteps:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def step(self, text: str) -> None:
        self.console.print(f"[cyan]•[/] {text}")

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]warning:[/] {text}", soft_wrap=True)

    def progress(self, label: str, done: int, total: int) -> None:
        if not self.console.is_terminal:
            self._plain(label, done, total)
            return
        task = self.tasks.get(label)
        if task is None:
            task = self.bars.add_task(label, total=total or None)
            self.tasks[label] = task
        self.bars.update(task, completed=done, total=total or None)

    def _plain(self, label: str, done: int, total: int) -> None:
        from torchslim.units import human

        if not total:
            return  # a layer being compressed: its step line already says so
        if label not in self.plain:
            self.console.print(f"  {label} ({human(total)}) …", markup=False, highlight=False)
        elif total and done >= total > self.plain[label]:
            self.console.print(f"  {label}: done", markup=False, highlight=False)
        self.plain[label] = done


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="torchslim")
def main() -> None:
    """Small, non-root, reproducible container images for PyTorch services."""
