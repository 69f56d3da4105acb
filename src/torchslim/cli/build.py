"""`build`, `push`, `deps`: make an image, move it, show what goes into it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from torchslim.cli.app import (
    CliSteps,
    err_console,
    friendly_errors,
    main,
    out_console,
    tls_verify_option,
)


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
    "--compression",
    type=click.Choice(["gzip", "zstd", "zstd:chunked", "estargz"]),
    help="Layer compression (default: the config's `compression`, else gzip).",
)
@click.option(
    "--compression-level",
    "compression_level",
    type=int,
    metavar="N",
    help="Compressor level (default: the config's `compression-level`): zstd and "
    "zstd:chunked 1-19 (default 3), gzip and estargz 1-9 (default 6). Higher pushes fewer "
    "bytes for more build CPU, paid once per layer: a cached layer keeps its bytes.",
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
    type=click.Choice(["image", "base", "os", "debug", "notebook"]),
    default="image",
    show_default=True,
    help="image: the service; base: OS + torch + deps, a shared base; os: the OS alone; "
    "debug: the service plus a layer of busybox and py-spy (tag -debug); notebook: the "
    "service plus JupyterLab on port 8888, token required (tag -notebook).",
)
@tls_verify_option
@click.option(
    "--torch",
    "torch_version",
    help="Another torch release for this build: the project's torch pins follow it "
    "(torchvision/torchaudio too); no file is edited.",
)
@click.option(
    "--variant", help="cpu or cuXYZ (e.g. cu130) for this build, instead of the config's."
)
@click.option("--python", "python_version", help="Python 3.X for this build (a lock of its own).")
@click.option(
    "--no-prove",
    is_flag=True,
    help="Do not run the image before writing it (the report says it was not proven).",
)
@click.option(
    "--sbom",
    "sbom_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the SBOMs (CycloneDX, SPDX) and provenance as files into DIR.",
)
@click.option(
    "--attach-sbom/--no-attach-sbom",
    default=True,
    show_default=True,
    help="Attach SBOMs and provenance to oci:/docker:// outputs as OCI referrers "
    "(a layout's index.json still names the image alone).",
)
@click.option(
    "--cache-from",
    "cache_from",
    multiple=True,
    metavar="REGISTRY/REPO",
    help="Read finished layers from this registry build cache (repeatable, read-only): "
    "a miss or a bad entry only means the layer is built here.",
)
@click.option(
    "--cache-to",
    "cache_to",
    metavar="REGISTRY/REPO",
    help="Write every layer this build used to this registry build cache, one entry "
    "per layer tagged by its key.",
)
@friendly_errors
def build(
    project: Path,
    output: str | None,
    force: bool,
    profile: str | None,
    keep: tuple[str, ...],
    no_slim: bool,
    compression: str | None,
    compression_level: int | None,
    tag: str | None,
    allow_latest: bool,
    platform: str | None,
    mirror: str | None,
    strict: bool,
    relock: bool,
    json_path: Path | None,
    target: str,
    tls_verify: bool,
    torch_version: str | None,
    variant: str | None,
    python_version: str | None,
    no_prove: bool,
    sbom_dir: Path | None,
    attach_sbom: bool,
    cache_from: tuple[str, ...],
    cache_to: str | None,
) -> None:
    """Build PROJECT (a folder with torchslim.toml) into an image."""
    from torchslim.build import (
        BuildOptions,
        build,
        check_output,
        plan_build,
        publish,
        publish_cache,
    )
    from torchslim.build.report import render_outcome, write_json
    from torchslim.build.sbom import Invocation, write_sbom_files
    from torchslim.config import load_config
    from torchslim.deps.pipconf import load_pip_settings

    cfg = load_config(project)
    opts = BuildOptions(
        output=output,
        force=force,
        profile=profile,
        keep=keep,
        no_slim=no_slim,
        compression=compression,  # type: ignore[arg-type]
        compression_level=compression_level,
        tag=tag,
        allow_latest=allow_latest,
        platform=platform,
        mirror=mirror,
        strict=strict,
        relock=relock,
        target=target,  # type: ignore[arg-type]
        tls_verify=tls_verify,
        prove=not no_prove,
        torch=torch_version,
        variant=variant,
        python=python_version,
        cache_from=cache_from,
        cache_to=cache_to,
    )
    bp = plan_build(cfg, opts, load_pip_settings())
    invocation = Invocation.of(["torchslim", "build", str(project)], opts)
    with CliSteps(err_console) as steps:
        check_output(bp, steps)
        results = [build(plan, steps, invocation) for plan in bp.plans]
        written = publish(bp, results, steps, attach_sbom=attach_sbom)
        exported = publish_cache(bp, results, steps)
        if sbom_dir is not None:
            for path in write_sbom_files(sbom_dir, results):
                steps.step(f"Wrote {path}")
    render_outcome(results, written, out_console, exported)
    if json_path is not None:
        write_json(results, written, json_path, exported)


@main.command()
@click.argument("source")
@click.argument("destination")
@tls_verify_option
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
    The SBOMs and provenance a layout attaches to the image go along as referrers.
    """
    from torchslim.build.report import render_push
    from torchslim.oci.push import push_with_referrers
    from torchslim.oci.transport import open_image, parse_location

    src = parse_location(source, what="source", allowed=("oci", "docker-archive"))
    dest = parse_location(destination, what="destination", allowed=("docker",))
    image = open_image(src)
    with CliSteps(err_console) as steps:
        result, referrers = push_with_referrers(
            image,
            dest.target,
            tls_verify=tls_verify,
            progress=steps.progress,
            mount_from=mount_from,
        )
    render_push(result, out_console)
    if referrers:
        out_console.print(f"Attached {len(referrers)} referrer(s) (SBOMs, provenance)")


@main.command()
@click.argument("project", default=".", type=click.Path(path_type=Path))
@click.option("--platform", help="linux/amd64 or linux/arm64 (default: from the config).")
@click.option("--strict", is_flag=True, help="Exit non-zero when dev-only packages are found.")
@click.option("--torch", "torch_version", help="Another torch release than the config's.")
@click.option("--variant", help="cpu or cuXYZ (e.g. cu130) instead of the config's.")
@click.option("--python", "python_version", help="Python 3.X instead of the config's.")
@friendly_errors
def deps(
    project: Path,
    platform: str | None,
    strict: bool,
    torch_version: str | None,
    variant: str | None,
    python_version: str | None,
) -> None:
    """Resolve PROJECT's prod requirements for the target; audit dev-only packages."""
    from rich.table import Table

    from torchslim.build import BuildOptions, plan_build, resolve_lock
    from torchslim.config import load_config
    from torchslim.deps.audit import audit, format_audit, runtime_tools
    from torchslim.deps.pipconf import load_pip_settings

    cfg = load_config(project)
    opts = BuildOptions(
        platform=platform, torch=torch_version, variant=variant, python=python_version
    )
    bp = plan_build(cfg, opts, load_pip_settings())
    plan = bp.plans[0]
    with CliSteps(err_console) as steps:
        lock = resolve_lock(plan, steps)
    from torchslim.display import styled

    table = Table(title=f"Prod packages for {plan.platform}", title_justify="left")
    table.add_column("package")
    table.add_column("version")
    table.add_column("wheel")
    table.add_column("brought by")
    for w in sorted(lock.packages, key=lambda w: w.name):
        parents = ", ".join(lock.parents.get(w.name, ()))
        table.add_row(styled(w.name), styled(w.version), styled(w.filename), styled(parents))
    out_console.print(table)
    sources = Table(title=f"Requirements ({plan.requirements.source})", title_justify="left")
    sources.add_column("requirement")
    sources.add_column("from")
    for requirement, origin in plan.requirements.rows():
        sources.add_row(requirement, origin)
    out_console.print(sources)
    for note in plan.requirements.notes:
        out_console.print(f"note: {note}", soft_wrap=True)
    findings = audit(lock)
    for line in format_audit(findings, runtime_tools(lock)):
        out_console.print(styled(line), soft_wrap=True)
    if findings and strict:
        sys.exit(3)
