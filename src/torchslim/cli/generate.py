"""`init`, `dockerfile`, `lint`, `ci`, `k8s`: a project's config, and for teams that build with
`docker build` and deploy."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from torchslim.cli.app import friendly_errors, main, out_console


@main.command()
@click.argument("project", default=".", type=click.Path(path_type=Path))
@click.option("--builder-image", help="Builder stage base (ARG BUILDER_IMAGE default).")
@click.option("--runtime-image", help="Runtime stage base (ARG RUNTIME_IMAGE default).")
@click.option("--force", is_flag=True, help="Replace an existing Dockerfile.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the Dockerfile instead.")
@click.option("--torch", "torch_version", help="Another torch release than the config's.")
@click.option("--variant", help="cpu or cuXYZ (e.g. cu130) instead of the config's.")
@friendly_errors
def dockerfile(
    project: Path,
    builder_image: str | None,
    runtime_image: str | None,
    force: bool,
    to_stdout: bool,
    torch_version: str | None,
    variant: str | None,
) -> None:
    """Write a multi-stage Dockerfile and .dockerignore for PROJECT."""
    from torchslim.config import load_config, with_torch
    from torchslim.generate.dockerfile import (
        LOCKED,
        dockerfile_files,
        dockerignore_text,
        render_dockerfile,
        write_generated,
    )

    cfg = with_torch(load_config(project), torch_version, variant)
    text = render_dockerfile(cfg, builder_base=builder_image, runtime_base=runtime_image)
    if to_stdout:
        click.echo(text, nl=False)
        return
    generated = {"Dockerfile": text}
    locked = dockerfile_files(cfg).get(LOCKED)
    if locked is not None:  # the wheels `torchslim build` installs, pinned by hash
        generated[LOCKED] = locked
    written = write_generated(cfg.root, generated, force=force)
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
@click.option(
    "--target",
    type=click.Choice(["image", "notebook"]),
    default="image",
    show_default=True,
    help="notebook: the -notebook image, its token from a Secret, a ClusterIP Service.",
)
@friendly_errors
def k8s(
    project: Path, image: str, replicas: int, output: Path | None, force: bool, target: str
) -> None:
    """Kubernetes Deployment + Service with probes on the health path."""
    from torchslim.config import load_config
    from torchslim.generate.dockerfile import write_generated
    from torchslim.generate.k8s import render_k8s

    cfg = load_config(project)
    text = render_k8s(cfg, image=image, replicas=replicas, target=target)
    if output is None:
        click.echo(text, nl=False)
        return
    for path in write_generated(output.parent, {output.name: text}, force=force):
        out_console.print(f"wrote {path}")


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
