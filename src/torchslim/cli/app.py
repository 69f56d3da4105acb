"""The command group, its one error handler and the progress display every command shares."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

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
from rich.text import Text

from torchslim import __version__
from torchslim.display import lines, one_line, safe
from torchslim.errors import TorchslimError
from torchslim.redact import redact

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


def report_error(message: object, code: int, *, fold: bool = False) -> NoReturn:
    """``error: <message>`` on stderr, then exit ``code``; this cannot raise.

    The message often quotes what the user or an image gave (a path, a reference, a
    config value): it is redacted and printed as plain text, never as rich markup, with
    control characters shown as escapes. A message is one line unless torchslim made it
    several (every configuration error of a file); ``fold`` makes it one line anyway.
    """
    try:
        text = redact(str(message))
        line = one_line(text) if fold else lines(text)
    except Exception:  # a message that cannot even be turned into text
        line = "(the error message could not be shown)"
    try:
        err_console.print(Text.assemble(("error:", "bold red"), " ", line), soft_wrap=True)
    except Exception:
        try:
            sys.stderr.write(f"error: {line}\n")
            sys.stderr.flush()
        except Exception:
            pass
    sys.exit(code)


def friendly_errors(fn: F) -> F:
    """One line on stderr and a non-zero exit instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TorchslimError as exc:
            report_error(exc, exc.exit_code)
        except KeyboardInterrupt:
            report_error("interrupted; nothing was written to the output", 130)
        except Exception as exc:  # a bug: still one line unless asked for more
            if os.environ.get("TORCHSLIM_DEBUG"):
                raise
            report_error(
                f"internal error: {type(exc).__name__}: {exc} "
                "(rerun with TORCHSLIM_DEBUG=1 for the traceback and report it)",
                70,
                fold=True,
            )

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
        self.console.print(Text.assemble(("•", "cyan"), " ", one_line(redact(text))))

    def warn(self, text: str) -> None:
        line = lines(redact(text))
        self.console.print(Text.assemble(("warning:", "yellow"), " ", line), soft_wrap=True)

    def progress(self, label: str, done: int, total: int) -> None:
        if not self.console.is_terminal:
            self._plain(label, done, total)
            return
        task = self.tasks.get(label)
        if task is None:
            # The description is a format string with markup: names from wheels and
            # images are shown escaped.
            task = self.bars.add_task(safe(label), total=total or None)
            self.tasks[label] = task
        self.bars.update(task, completed=done, total=total or None)

    def _plain(self, label: str, done: int, total: int) -> None:
        from torchslim.units import human

        if not total:
            return  # a layer being compressed: its step line already says so
        if label not in self.plain:
            tail = "" if done >= total else " …"  # a small file is often done at once
            self.console.print(f"  {label} ({human(total)}){tail}", markup=False, highlight=False)
        elif done >= total > self.plain[label]:
            self.console.print(f"  {label}: done", markup=False, highlight=False)
        self.plain[label] = done


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="torchslim")
def main() -> None:
    """Small, non-root, reproducible container images for PyTorch services."""
    _route_library_warnings()


class _WarningLines(logging.Handler):
    """torchslim's library warnings (a retried upload, a file left unstripped …) as the
    CLI's own ``warning:`` lines, escaped like every other text that may come from outside."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a warning must never stop a command
            err_console.print(Text("warning: ", style="yellow") + Text(lines(record.getMessage())))


def _route_library_warnings() -> None:
    logger = logging.getLogger("torchslim")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines(logging.WARNING))
        logger.propagate = False
