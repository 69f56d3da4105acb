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
    metavar="oci:DIR|docker-archive:FILE|docker://REF",
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
@click.option(
    "--target",
    type=click.Choice(["image", "base", "os"]),
    default="image",
    show_default=True,
    help="image: the service; base: OS + torch + deps, a shared base; os: the OS alone.",
)
@click.option(
    "--tls-verify",
    type=bool,
    default=True,
    show_default=True,
    help="Verify registry TLS; false allows plain http (a loopback registry).",
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
    target: str,
    tls_verify: bool,
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
        target=target,  # type: ignore[arg-type]
        tls_verify=tls_verify,
    )
    with CliSteps(err_console) as steps:
        outcome = run_build(cfg, opts, steps)
    report.render_outcome(outcome, out_console)
    if json_path is not None:
        report.write_json(outcome, json_path)


@main.command()
@click.argument("directory", default=".", type=click.Path(path_type=Path, file_okay=False))
@click.option("--pyproject", is_flag=True, help="Write [tool.torchslim] into pyproject.toml.")
@click.option("--cmd", help="How the service starts, when the project does not say.")
@friendly_errors
def init(directory: Path, pyproject: bool, cmd: str | None) -> None:
    """Write torchslim.toml for DIRECTORY from its Dockerfile, Procfile, requirements and models.

    Every value is printed with where it came from; an existing config is never replaced.
    """
    from torchslim.errors import ConfigError
    from torchslim.project import plan_init, write_config
    from torchslim.project.initreport import render_init

    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such project directory")
    plan = plan_init(directory, cmd=cmd)
    render_init(plan, write_config(plan, pyproject=pyproject), out_console)


@main.command()
@click.argument("source")
@click.argument("destination")
@click.option(
    "--tls-verify",
    type=bool,
    default=True,
    show_default=True,
    help="Verify TLS; false allows plain http (a loopback registry).",
)
@click.option(
    "--mount-from",
    multiple=True,
    metavar="REPO",
    help="Mount blobs from this repository of the same registry.",
)
@friendly_errors
def push(source: str, destination: str, tls_verify: bool, mount_from: tuple[str, ...]) -> None:
    """Push SOURCE (oci:DIR[:ref] or docker-archive:FILE) to DESTINATION (docker://REF).

    Blobs the registry has are skipped; the tag moves only once every blob is there.
    """
    from torchslim import report
    from torchslim.analyze import open_image
    from torchslim.errors import ConfigError
    from torchslim.oci.push import push_image

    if not destination.startswith("docker://"):
        raise ConfigError(f"destination {destination!r}: expected docker://REGISTRY/REPO[:TAG]")
    if not source.startswith(("oci:", "docker-archive:")):
        raise ConfigError(f"source {source!r}: expected oci:DIR[:ref] or docker-archive:FILE")
    image = open_image(source)
    with CliSteps(err_console) as steps:
        result = push_image(
            image,
            destination.removeprefix("docker://"),
            tls_verify=tls_verify,
            progress=steps.progress,
            mount_from=mount_from,
        )
    report.render_push(result, out_console)


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
        _, lock = builder.resolve()
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


@main.command()
@click.argument("project", default=".", type=click.Path(path_type=Path))
@click.option("--builder-image", help="Builder stage base (ARG BUILDER_IMAGE default).")
@click.option("--runtime-image", help="Runtime stage base (ARG RUNTIME_IMAGE default).")
@click.option("--force", is_flag=True, help="Replace an existing Dockerfile.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the Dockerfile instead.")
@friendly_errors
def dockerfile(
    project: Path,
    builder_image: str | None,
    runtime_image: str | None,
    force: bool,
    to_stdout: bool,
) -> None:
    """Write a multi-stage Dockerfile and .dockerignore for PROJECT."""
    from torchslim.config import load_config
    from torchslim.generate.dockerfile import (
        dockerignore_text,
        render_dockerfile,
        write_generated,
    )

    cfg = load_config(project)
    text = render_dockerfile(cfg, builder_base=builder_image, runtime_base=runtime_image)
    if to_stdout:
        click.echo(text, nl=False)
        return
    written = write_generated(cfg.root, {"Dockerfile": text}, force=force)
    # An existing .dockerignore is merged (the user's lines kept), never refused or replaced.
    written += write_generated(cfg.root, {".dockerignore": dockerignore_text(cfg)}, force=True)
    for path in written:
        out_console.print(f"wrote {path}")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tty", "json", "sarif", "gitlab"]),
    default="tty",
    show_default=True,
)
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="Lint config (default ./.torchslim-lint.toml when present).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "info", "none"]),
    default="error",
    show_default=True,
    help="Exit 1 at or above this severity.",
)
@click.option(
    "--min-severity",
    type=click.Choice(["error", "warning", "info"]),
    default="info",
    show_default=True,
    help="Hide findings below this.",
)
@friendly_errors
def lint(
    paths: tuple[Path, ...], fmt: str, config: Path | None, fail_on: str, min_severity: str
) -> None:
    """Lint Dockerfiles (default ./Dockerfile, ./dockerfile or ./Containerfile)."""
    from torchslim.lint import format_result, lint_paths
    from torchslim.lint.engine import find_dockerfiles

    default = find_dockerfiles(Path(".")) or [Path("Dockerfile")]
    result = lint_paths(list(paths) or default, config=config, min_severity=min_severity)
    click.echo(format_result(result, fmt), nl=False)  # type: ignore[arg-type]
    sys.exit(result.exit_code(fail_on))


@main.command()
@click.argument("kind", type=click.Choice(["gitlab", "github"]))
@click.argument("project", default=".", type=click.Path(path_type=Path))
@click.option("--classic", is_flag=True, help="A docker build --target runtime pipeline.")
@click.option("--max-size", help="Size gate for torchslim analyze (e.g. 1500MB).")
@click.option("--force", is_flag=True, help="Replace existing CI files.")
@friendly_errors
def ci(kind: str, project: Path, classic: bool, max_size: str | None, force: bool) -> None:
    """Write a CI pipeline (GitLab or GitHub) that builds, gates and pushes the image."""
    from torchslim.config import load_config
    from torchslim.generate.ci import render_ci
    from torchslim.generate.dockerfile import write_generated

    cfg = load_config(project)
    files = render_ci(cfg, kind, classic=classic, max_size=max_size)  # type: ignore[arg-type]
    for path in write_generated(cfg.root, files, force=force):
        out_console.print(f"wrote {path}")


@main.command()
@click.argument("project", default=".", type=click.Path(path_type=Path))
@click.option("--image", required=True, help="Image reference the Deployment runs.")
@click.option("--replicas", type=int, default=1, show_default=True)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@friendly_errors
def k8s(project: Path, image: str, replicas: int, output: Path | None, force: bool) -> None:
    """Kubernetes Deployment + Service with probes on the health path."""
    from torchslim.config import load_config
    from torchslim.generate.dockerfile import write_generated
    from torchslim.generate.k8s import render_k8s

    cfg = load_config(project)
    text = render_k8s(cfg, image=image, replicas=replicas)
    if output is None:
        click.echo(text, nl=False)
        return
    for path in write_generated(output.parent, {output.name: text}, force=force):
        out_console.print(f"wrote {path}")


@main.command()
@click.option("--variant", help="CUDA variant the host must run, e.g. cu130.")
@click.option("--image", help="Image whose CUDA version the driver must support.")
@click.option("--engine", type=click.Choice(["auto", "podman", "docker"]), default="auto")
@click.option(
    "--default-runtime", is_flag=True, help="Also require nvidia as Docker's default-runtime."
)
@friendly_errors
def doctor(variant: str | None, image: str | None, engine: str, default_runtime: bool) -> None:
    """Check this host can run GPU images: driver, toolkit, Docker and Podman config.

    Exit codes: 0 ok, 2 bad variant, 3 no GPU, 4 driver, 5 toolkit/runtime config.
    """
    from torchslim.runtime.doctor import render_doctor, run_doctor
    from torchslim.runtime.engine import detect_engine
    from torchslim.runtime.verify import image_cuda

    cuda = image_cuda(image, detect_engine(engine)) if image else None
    report = run_doctor(variant=variant, image_cuda=cuda, default_runtime=default_runtime)
    render_doctor(report, out_console)
    sys.exit(report.exit_code())


@main.command()
@click.argument("image")
@click.option(
    "--project",
    type=click.Path(path_type=Path),
    help="Folder with torchslim.toml (port, health, smoke); default: current.",
)
@click.option("--engine", type=click.Choice(["auto", "podman", "docker"]), default="auto")
@click.option("--gpu", is_flag=True, help="Also check torch.cuda in the container.")
@click.option("--timeout", type=float, default=120, show_default=True)
@friendly_errors
def verify(image: str, project: Path | None, engine: str, gpu: bool, timeout: float) -> None:
    """Run IMAGE (docker-archive:FILE, oci:DIR or a name), wait for health, run the smoke test.

    Exit codes: 0 passed, 1 failed, 4 GPU driver problem, 5 toolkit problem, 6 no engine.
    """
    from torchslim.config import load_config
    from torchslim.errors import ConfigError
    from torchslim.runtime.engine import detect_engine
    from torchslim.runtime.verify import render_verify, verify_image

    port, health, smoke = None, None, []
    try:
        cfg = load_config(project or Path("."))
        port, health, smoke = cfg.port, cfg.health, list(cfg.smoke)
    except ConfigError:
        if project is not None:
            raise
        pass  # no torchslim.toml here: verify the image alone
    result = verify_image(
        image,
        engine=detect_engine(engine),
        port=port,
        health=health,
        smoke=smoke,
        gpu=gpu,
        timeout=timeout,
    )
    render_verify(result, out_console)
    sys.exit(result.exit_code())


@main.command()
@click.option("--profile", help="Only the rules that remove files under this profile.")
@friendly_errors
def rules(profile: str | None) -> None:
    """Slimming rules: id, what each profile keeps, and why."""
    from rich.table import Table

    from torchslim.slim.rules import PROFILES, RULES, check_profile

    if profile is not None:
        check_profile(profile)
    table = Table(title="Slimming rules", title_justify="left")
    table.add_column("id")
    for name in PROFILES:
        table.add_column(name, justify="center")
    table.add_column("why")
    for rule in RULES:
        if profile is not None and not rule.active_in(profile):
            continue
        marks = ["keep" if p in rule.keep_in else rule.action for p in PROFILES]
        table.add_row(rule.id, *marks, rule.why)
    out_console.print(table)
    for name, text in PROFILES.items():
        out_console.print(f"[bold]{name}[/]: {text}", soft_wrap=True)


def _write_text(path: Path, text: str) -> None:
    """Write a report atomically: a temporary sibling, then rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


@main.command()
@click.argument("image")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write JSON.")
@click.option("--sarif", "sarif_path", type=click.Path(path_type=Path), help="Write SARIF.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path),
    help="Write a self-contained HTML page with charts.",
)
@click.option("--max-size", help="Exit 4 when the compressed image is larger (e.g. 2GB).")
@click.option(
    "--fail-on",
    "fail_on",
    default="",
    help="Exit 5 on findings at/above a severity or with these ids (comma list).",
)
@friendly_errors
def analyze(
    image: str,
    json_path: Path | None,
    sarif_path: Path | None,
    html_path: Path | None,
    max_size: str | None,
    fail_on: str,
) -> None:
    """What is in IMAGE and why it is big (oci:DIR, docker-archive:FILE, docker://REF, ...).

    Exit codes: 0 ok, 4 over --max-size, 5 a --fail-on finding, 6 both.
    """
    import json

    from torchslim.analyze import analyze as run_analyze
    from torchslim.analyze import gate_exit_code, open_image, parse_size, reference_name
    from torchslim.analyze.report import render_tty, to_html, to_json, to_sarif

    limit = parse_size(max_size) if max_size else None
    fails = [f.strip() for f in fail_on.split(",") if f.strip()]
    result = run_analyze(open_image(image), name=reference_name(image))
    render_tty(result, out_console)
    if json_path:
        _write_text(json_path, json.dumps(to_json(result), indent=2) + "\n")
    if sarif_path:
        _write_text(sarif_path, json.dumps(to_sarif(result), indent=2) + "\n")
    if html_path:
        _write_text(html_path, to_html(result))
    sys.exit(gate_exit_code(result, max_size=limit, fail_on=fails))


@main.command()
@click.argument("before")
@click.argument("after")
@click.option(
    "--markdown",
    "md_path",
    type=click.Path(path_type=Path),
    help="Write the before/after table as Markdown (for a merge request).",
)
@friendly_errors
def diff(before: str, after: str, md_path: Path | None) -> None:
    """Size deltas between two images, per category and package."""
    from torchslim.analyze import analyze as run_analyze
    from torchslim.analyze import diff as run_diff
    from torchslim.analyze import open_image, reference_name
    from torchslim.analyze.report import diff_to_markdown, render_diff

    a = run_analyze(open_image(before), name=reference_name(before))
    b = run_analyze(open_image(after), name=reference_name(after))
    result = run_diff(a, b)
    render_diff(result, out_console)
    if md_path:
        _write_text(md_path, diff_to_markdown(result))


if __name__ == "__main__":
    main()
