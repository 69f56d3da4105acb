"""Thin click commands; each calls one function and prints its result."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
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

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


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
    """Build steps on stderr, with progress bars for downloads and layers."""

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
        task = self.tasks.get(label)
        if task is None:
            task = self.bars.add_task(label, total=total or None)
            self.tasks[label] = task
        self.bars.update(task, completed=done, total=total or None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="torchslim")
def main() -> None:
    """Small, non-root, reproducible container images for PyTorch services."""


@main.command()
@click.argument("project", default=".", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    "output",
    metavar="oci:DIR|docker-archive:FILE",
    help="Where to write the image (as skopeo names transports).",
)
@click.option("--force", is_flag=True, help="Replace an existing output.")
@click.option("--profile", help="Slimming profile: inference, compile, distributed, full.")
@click.option("--keep", multiple=True, metavar="GLOB", help="Keep files a rule would remove.")
@click.option("--no-slim", is_flag=True, help="Install wheels as they come; remove nothing.")
@click.option(
    "--compression", type=click.Choice(["gzip", "zstd"]), default="gzip", show_default=True
)
@click.option("--tag", help="Image tag (default v{version}-pytorch{X.Y}-{variant}).")
@click.option("--allow-latest", is_flag=True, help="Allow the tag 'latest'.")
@click.option("--platform", help="linux/amd64 or linux/arm64 (default: from the config).")
@click.option("--mirror", help="Debian mirror URL (default: deb.debian.org).")
@click.option("--strict", is_flag=True, help="Dev-only packages in prod are an error.")
@click.option("--relock", is_flag=True, help="Resolve again and replace pylock.toml.")
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), help="Write the report as JSON."
)
@friendly_errors
def build(
    project: Path,
    output: str | None,
    force: bool,
    profile: str | None,
    keep: tuple[str, ...],
    no_slim: bool,
    compression: str,
    tag: str | None,
    allow_latest: bool,
    platform: str | None,
    mirror: str | None,
    strict: bool,
    relock: bool,
    json_path: Path | None,
) -> None:
    """Build PROJECT (a folder with torchslim.toml) into an image."""
    from torchslim.config import load_config

    cfg = load_config(project)
    from torchslim import report
    from torchslim.build import BuildOptions, parse_output
    from torchslim.build import build as run_build

    opts = BuildOptions(
        output=parse_output(output) if output else None,
        force=force,
        profile=profile,
        keep=keep,
        no_slim=no_slim,
        compression=compression,  # type: ignore[arg-type]
        tag=tag,
        allow_latest=allow_latest,
        platform=platform,
        mirror=mirror,
        strict=strict,
        relock=relock,
    )
    with CliSteps(err_console) as steps:
        result = run_build(cfg, opts, steps)
    report.render(result, out_console)
    if json_path is not None:
        report.write_json(result, json_path)


@main.command()
@click.argument("project", default=".", type=click.Path(path_type=Path))
@click.option("--platform", help="linux/amd64 or linux/arm64 (default: from the config).")
@click.option("--strict", is_flag=True, help="Exit non-zero when dev-only packages are found.")
@friendly_errors
def deps(project: Path, platform: str | None, strict: bool) -> None:
    """Resolve PROJECT's prod requirements for the target; audit dev-only packages."""
    from rich.table import Table

    from torchslim.build import Builder, BuildOptions
    from torchslim.config import load_config
    from torchslim.deps.audit import audit, format_audit

    cfg = load_config(project)
    with CliSteps(err_console) as steps:
        builder = Builder(cfg, BuildOptions(platform=platform), steps)
        _, lock = builder.lock()
    table = Table(title=f"Prod packages for {builder.platform}", title_justify="left")
    table.add_column("package")
    table.add_column("version")
    table.add_column("wheel")
    table.add_column("brought by")
    for w in sorted(lock.packages, key=lambda w: w.name):
        table.add_row(w.name, w.version, w.filename, ", ".join(lock.parents.get(w.name, ())))
    out_console.print(table)
    findings = audit(lock)
    for line in format_audit(findings):
        out_console.print(line, soft_wrap=True)
    if not findings:
        out_console.print("No dev-only packages in the prod requirements.")
    if findings and strict:
        sys.exit(3)


if __name__ == "__main__":
    main()
