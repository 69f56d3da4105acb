"""`analyze`, `diff`, `sbom`, `verify`, `doctor`, `rules`: read images, run them, check hosts."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from torchslim.cli.app import friendly_errors, main, out_console, tls_verify_option


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
    from torchslim.runtime.load import image_cuda

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

    from torchslim.slim.rules import PROFILES, RULES, STEPS, check_profile

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
    census = Table(title="Steps from the served proof's census", title_justify="left")
    census.add_column("id")
    census.add_column("why")
    for step_id, why in STEPS.items():
        census.add_row(step_id, why)
    out_console.print(census)


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
@tls_verify_option
@friendly_errors
def analyze(
    image: str,
    json_path: Path | None,
    sarif_path: Path | None,
    html_path: Path | None,
    max_size: str | None,
    fail_on: str,
    tls_verify: bool,
) -> None:
    """What is in IMAGE and why it is big (oci:DIR, docker-archive:FILE, docker://REF, ...).

    Exit codes: 0 ok, 4 over --max-size, 5 a --fail-on finding, 6 both.
    """
    import json

    from torchslim.analyze import analyze as run_analyze
    from torchslim.analyze import gate_exit_code, open_image, parse_size, reference_name
    from torchslim.analyze.html import to_html
    from torchslim.analyze.report import render_tty, to_json, to_sarif
    from torchslim.atomic import write_atomic

    limit = parse_size(max_size) if max_size else None
    fails = [f.strip() for f in fail_on.split(",") if f.strip()]
    result = run_analyze(open_image(image, tls_verify=tls_verify), name=reference_name(image))
    render_tty(result, out_console)
    if json_path:
        write_atomic(json_path, json.dumps(to_json(result), indent=2) + "\n")
    if sarif_path:
        write_atomic(sarif_path, json.dumps(to_sarif(result), indent=2) + "\n")
    if html_path:
        write_atomic(html_path, to_html(result))
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
@tls_verify_option
@friendly_errors
def diff(before: str, after: str, md_path: Path | None, tls_verify: bool) -> None:
    """Size deltas between two images, per category and package."""
    from torchslim.analyze import analyze as run_analyze
    from torchslim.analyze import diff as run_diff
    from torchslim.analyze import open_image, reference_name
    from torchslim.analyze.report import diff_to_markdown, render_diff
    from torchslim.atomic import write_atomic

    a = run_analyze(open_image(before, tls_verify=tls_verify), name=reference_name(before))
    b = run_analyze(open_image(after, tls_verify=tls_verify), name=reference_name(after))
    result = run_diff(a, b)
    render_diff(result, out_console)
    if md_path:
        write_atomic(md_path, diff_to_markdown(result))


@main.command()
@click.argument("image")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cyclonedx", "spdx"]),
    default="cyclonedx",
    show_default=True,
    help="CycloneDX 1.6 JSON or SPDX 2.3 JSON.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the SBOM to FILE instead of standard output.",
)
@tls_verify_option
@friendly_errors
def sbom(image: str, fmt: str, output: Path | None, tls_verify: bool) -> None:
    """The SBOM torchslim attached to IMAGE (oci:DIR[:tag] or docker://REF).

    Exit code 1, with one line saying so, when the image carries none.
    """
    from torchslim.atomic import write_atomic
    from torchslim.sbom.read import read_sbom

    data = read_sbom(image, fmt, tls_verify=tls_verify)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        write_atomic(output, data)
