"""The plan: every decision from the config and the options, all configuration errors at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchslim.build.plan import BuildOptions, plan_build
from torchslim.config import ProjectConfig, parse_config
from torchslim.deps.pipconf import IndexSettings
from torchslim.errors import ConfigError

SETTINGS = IndexSettings()


def config(tmp_path: Path, **keys: object) -> ProjectConfig:
    data: dict[str, object] = {"name": "svc", "version": "1.0", "torch": "2.13.0", "cmd": ["x"]}
    data.update(keys)
    return parse_config(data, file=tmp_path / "torchslim.toml", root=tmp_path)


def test_defaults_make_one_debian_image(tmp_path: Path) -> None:
    bp = plan_build(config(tmp_path), BuildOptions(), SETTINGS, environ={})
    (plan,) = bp.plans
    assert str(plan.platform) == "linux/amd64"
    assert plan.tag == "v1.0-pytorch2.13-cpu"
    assert plan.debian_base and plan.debian.suite == "bookworm"
    assert plan.lock_path == tmp_path / "pylock.toml"
    assert plan.profile == "inference" and plan.slim
    assert plan.source_date_epoch is None and bp.output is None


def test_platforms_targets_and_locks(tmp_path: Path) -> None:
    opts = BuildOptions(platform="linux/amd64,linux/arm64", target="base", output="oci:out")
    bp = plan_build(config(tmp_path), opts, SETTINGS, environ={"SOURCE_DATE_EPOCH": "7"})
    assert [str(p.platform) for p in bp.plans] == ["linux/amd64", "linux/arm64"]
    assert [p.lock_path.name for p in bp.plans] == ["pylock.toml", "pylock.linux-arm64.toml"]
    assert bp.tag == "v1.0-pytorch2.13-cpu-base"
    assert all(p.source_date_epoch == 7 for p in bp.plans)
    assert bp.output is not None and bp.output.transport == "oci"
    os_plan = plan_build(config(tmp_path), BuildOptions(target="os"), SETTINGS, environ={})
    assert os_plan.tag == "python3.11-bookworm"


def test_external_base_is_a_location(tmp_path: Path) -> None:
    bp = plan_build(config(tmp_path, base="python:3.11-slim"), BuildOptions(), SETTINGS, {})
    base = bp.plans[0].base
    assert base is not None and base.transport == "docker" and base.target == "python:3.11-slim"
    layout = plan_build(config(tmp_path, base="oci:/b:v1"), BuildOptions(), SETTINGS, {})
    loc = layout.plans[0].base
    assert loc is not None and (loc.transport, loc.target, loc.ref) == ("oci", "/b", "v1")


def test_every_configuration_error_is_reported_together(tmp_path: Path) -> None:
    cfg = config(tmp_path, profile="tiny", base="python:3.11-slim", apt=["curl"])
    opts = BuildOptions(
        tag="latest",
        output="docker-archive:x.tar",
        platform="linux/amd64,linux/arm64",
    )
    with pytest.raises(ConfigError) as err:
        plan_build(cfg, opts, SETTINGS, environ={"SOURCE_DATE_EPOCH": "yesterday"})
    text = str(err.value)
    assert text.startswith("5 configuration errors:")
    for part in ("unknown profile 'tiny'", "key `apt`", "--tag latest", "SOURCE_DATE_EPOCH"):
        assert part in text
    assert "docker-archive holds one platform" in text


def test_one_error_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--output 'tar:x' is not an image reference"):
        plan_build(config(tmp_path), BuildOptions(output="tar:x"), SETTINGS, environ={})
    with pytest.raises(ConfigError, match="linux/amd64 or linux/arm64"):
        plan_build(config(tmp_path), BuildOptions(platform="linux/s390x"), SETTINGS, {})


def test_the_compression_level_is_checked_for_its_format(tmp_path: Path) -> None:
    (plan,) = plan_build(config(tmp_path), BuildOptions(), SETTINGS, environ={}).plans
    assert (plan.compression, plan.compression_level) == ("gzip", 6)
    opts = BuildOptions(compression="zstd:chunked", compression_level=19)
    (plan,) = plan_build(config(tmp_path), opts, SETTINGS, environ={}).plans
    assert plan.compression_level == 19
    with pytest.raises(
        ConfigError, match=r"^--compression-level: level 22 is out of range for zstd; use 1 to 19"
    ):
        opts = BuildOptions(compression="zstd", compression_level=22)
        plan_build(config(tmp_path), opts, SETTINGS, environ={})
    with pytest.raises(ConfigError, match=r"none has no compression level; leave the level out"):
        opts = BuildOptions(compression="none", compression_level=1)
        plan_build(config(tmp_path), opts, SETTINGS, environ={})


def test_the_config_sets_compression_and_level_and_the_command_line_replaces_them(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, compression="zstd:chunked", **{"compression-level": 12})
    (plan,) = plan_build(cfg, BuildOptions(), SETTINGS, environ={}).plans
    assert (plan.compression, plan.compression_level) == ("zstd:chunked", 12)
    (plan,) = plan_build(cfg, BuildOptions(compression_level=5), SETTINGS, environ={}).plans
    assert (plan.compression, plan.compression_level) == ("zstd:chunked", 5)
    # Another format on the command line: the config's level was for its own format.
    (plan,) = plan_build(cfg, BuildOptions(compression="gzip"), SETTINGS, environ={}).plans
    assert (plan.compression, plan.compression_level) == ("gzip", 6)
    bad = config(tmp_path, compression="estargz", **{"compression-level": 12})
    with pytest.raises(
        ConfigError,
        match=r"torchslim.toml: key `compression-level`: level 12 is out of range for estargz",
    ):
        plan_build(bad, BuildOptions(), SETTINGS, environ={})


def test_torch_and_variant_from_the_command_line_lock_separately(tmp_path: Path) -> None:
    cfg = config(tmp_path, platform=["linux/amd64", "linux/arm64"])
    cuda = plan_build(cfg, BuildOptions(torch="2.14.1", variant="cu130"), SETTINGS, environ={})
    amd, arm = cuda.plans
    assert amd.torch.requirement == "torch==2.14.1" and amd.tag == "v1.0-pytorch2.14-cuda13.0"
    assert amd.lock_path.name == "pylock.torch2.14.1-cu130.toml"
    assert arm.lock_path.name == "pylock.linux-arm64-torch2.14.1-cu130.toml"
    # A command-line target locks in the build's own space, never beside the config.
    assert (
        not amd.lock_path.is_relative_to(tmp_path) and amd.lock_path.parent == arm.lock_path.parent
    )
    own = plan_build(cfg, BuildOptions(variant="cpu"), SETTINGS, environ={}).plans[0]
    assert own.lock_path.name == "pylock.toml"  # the config's own target
    with pytest.raises(ConfigError, match=r"--variant 'gpu': expected cpu or cuXYZ"):
        plan_build(cfg, BuildOptions(variant="gpu"), SETTINGS, environ={})


def test_profile_used_needs_a_served_proof(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        plan_build(config(tmp_path, profile="used"), BuildOptions(), SETTINGS, environ={})
    text = str(err.value)
    assert 'torchslim.toml: profile = "used" keeps only what the service imported' in text
    assert "set `port`" in text and "\n" not in text
    served = config(tmp_path, profile="used", port=8000, health="/health")
    (plan,) = plan_build(served, BuildOptions(), SETTINGS, environ={}).plans
    assert plan.profile == "used" and plan.census
    with pytest.raises(ConfigError, match=r"--profile used needs the served proof .*--no-prove"):
        plan_build(served, BuildOptions(profile="used", prove=False), SETTINGS, environ={})
    # bytecode = "imported" asks for the census too; the default asks for none.
    bytecode = config(tmp_path, port=8000, bytecode="imported")
    assert plan_build(bytecode, BuildOptions(), SETTINGS, environ={}).plans[0].census
    assert not plan_build(config(tmp_path, port=8000), BuildOptions(), SETTINGS, {}).plans[0].census


def test_estargz_prefetches_what_a_served_proof_opened(tmp_path: Path) -> None:
    lazy = BuildOptions(compression="estargz")
    served = config(tmp_path, port=8000)
    (plan,) = plan_build(served, lazy, SETTINGS, environ={}).plans
    assert plan.prefetch and not plan.census  # the census is taken, nothing is dropped by it
    assert not plan_build(served, BuildOptions(), SETTINGS, environ={}).plans[0].prefetch
    # Without a served proof there is nothing to put first: plain eStargz layers.
    unserved = plan_build(config(tmp_path), lazy, SETTINGS, environ={}).plans[0]
    unproven = plan_build(served, BuildOptions(compression="estargz", prove=False), SETTINGS, {})
    assert not unserved.prefetch and not unproven.plans[0].prefetch
