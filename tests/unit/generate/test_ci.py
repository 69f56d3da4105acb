"""CI files parse as YAML and do what they say; Kubernetes objects pass the API schema.

The schema check uses kubernetes-validate, which ships the Kubernetes JSON
schemas in the wheel (no network at test time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from torchslim.config import ProjectConfig, load_config
from torchslim.errors import ConfigError
from torchslim.generate.ci import render_ci
from torchslim.generate.k8s import render_k8s

EXAMPLE = Path(__file__).parents[3] / "examples" / "hello-torch"
K8S_VERSION = "1.33"
TAG = "v1.2-pytorch2.13-cpu"


@pytest.fixture(scope="module")
def cfg() -> ProjectConfig:
    return load_config(EXAMPLE)


def flat(lines: list[Any]) -> list[str]:
    """A job's script as GitLab runs it: nested lists (YAML anchors) flattened."""
    return [x for line in lines for x in (flat(line) if isinstance(line, list) else [line])]


def scripts(doc: dict[str, Any]) -> str:
    return "\n".join(
        line
        for job in doc.values()
        if isinstance(job, dict)
        for line in flat(job.get("script", []))
    )


def test_gitlab_torchslim_pipeline(cfg: ProjectConfig) -> None:
    files = render_ci(cfg, "gitlab")
    doc = yaml.safe_load(files[".gitlab-ci.yml"])
    assert doc["stages"] == ["build", "gate", "push"]
    assert doc["variables"]["IMAGE_TAG"] == TAG
    text = scripts(doc)
    assert '--tag "$IMAGE_TAG" --output oci:image' in text
    assert 'torchslim analyze oci:image --fail-on error --max-size "$MAX_SIZE"' in text
    assert '--output "docker://$IMAGE"' in text
    assert doc["push"]["rules"] == [{"if": "$CI_COMMIT_TAG"}]
    assert "docker build" not in text and "services" not in str(doc)  # no Docker-in-Docker
    # The registry build cache: read by every pipeline, written by the default branch only.
    assert doc["variables"]["BUILD_CACHE"] == "$CI_REGISTRY_IMAGE/buildcache"
    build = doc["build"]["script"]
    assert build[0][0] == "mkdir -p ~/.docker"  # the login anchor, before the build
    assert '--cache-from "$BUILD_CACHE" $CACHE_TO' in build[-1]
    assert 'if [ "$CI_COMMIT_BRANCH" = "$CI_DEFAULT_BRANCH" ]' in build[-2]
    assert 'CACHE_TO="--cache-to $BUILD_CACHE"; else CACHE_TO=""' in build[-2]


def test_gitlab_classic(cfg: ProjectConfig) -> None:
    doc = yaml.safe_load(render_ci(cfg, "gitlab", classic=True)[".gitlab-ci.yml"])
    text = scripts(doc)
    assert 'docker build --target runtime -t "$IMAGE" .' in text
    assert "torchslim analyze docker-archive:image.tar --fail-on error" in text


@pytest.mark.parametrize("classic", [False, True])
def test_github_workflow(cfg: ProjectConfig, classic: bool) -> None:
    files = render_ci(cfg, "github", classic=classic)
    doc = yaml.safe_load(files[".github/workflows/torchslim.yml"])
    assert doc["env"]["IMAGE_TAG"] == TAG
    steps = doc["jobs"]["image"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "torchslim analyze" in runs and "--fail-on error" in runs
    push = [s for s in steps if s.get("name") == "Push"][0]
    assert push["if"] == "startsWith(github.ref, 'refs/tags/')"
    if classic:
        assert "docker build --target runtime" in runs
    else:
        assert "docker build" not in runs and "docker://$IMAGE" in push["run"]
        build = [s for s in steps if s.get("name") == "Build"][0]["run"]
        assert '--cache-from "$BUILD_CACHE"' in build
        assert "github.ref == 'refs/heads/main' && '--cache-to \"$BUILD_CACHE\"'" in build
        assert doc["env"]["BUILD_CACHE"] == "ghcr.io/${{ github.repository }}/buildcache"
        assert runs.count("docker login") == 1
    # PyYAML reads the bare `on:` key as True.
    assert doc[True]["push"]["tags"] == ["v*"]


def test_ci_unknown_kind(cfg: ProjectConfig) -> None:
    with pytest.raises(ConfigError, match="choose gitlab or github"):
        render_ci(cfg, "jenkins")  # type: ignore[arg-type]


def k8s_docs(cfg: ProjectConfig, **kw: Any) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(render_k8s(cfg, image=f"registry.example/app:{TAG}", **kw)))


def test_k8s_validates_against_the_api_schema(cfg: ProjectConfig) -> None:
    docs = k8s_docs(cfg, replicas=2)
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)


def test_schema_check_can_fail(cfg: ProjectConfig) -> None:
    deployment = k8s_docs(cfg)[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = (
        "yes"
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_k8s_security_and_probes(cfg: ProjectConfig) -> None:
    dep, svc = k8s_docs(cfg)
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsGroup"] == 1000
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "1Gi"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["ports"][0]["containerPort"] == 8000
    assert c["resources"]["requests"] and "nvidia.com/gpu" not in c["resources"]["limits"]
    assert svc["spec"]["ports"][0]["targetPort"] == "http"


def test_k8s_gpu_variant(cfg: ProjectConfig) -> None:
    dep, _ = k8s_docs(cfg.model_copy(update={"variant": "cu128"}))
    limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    kubernetes_validate.validate(dep, K8S_VERSION, strict=True)


def test_k8s_without_port_has_no_service(cfg: ProjectConfig) -> None:
    docs = k8s_docs(cfg.model_copy(update={"port": None, "health": None}))
    assert [d["kind"] for d in docs] == ["Deployment"]
    kubernetes_validate.validate(docs[0], K8S_VERSION, strict=True)


def test_k8s_bad_input(cfg: ProjectConfig) -> None:
    with pytest.raises(ConfigError, match="not an image reference"):
        render_k8s(cfg, image="")
    with pytest.raises(ConfigError, match="replicas"):
        render_k8s(cfg, image="x:1", replicas=-1)


def test_k8s_writable_paths_are_empty_dirs(cfg: ProjectConfig) -> None:
    dep, _ = k8s_docs(cfg.model_copy(update={"writable": ["/app/uploads", "/data"]}))
    pod = dep["spec"]["template"]["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == ["/tmp", "/app/uploads", "/data"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for m in mounts[1:]:
        assert volumes[m["name"]]["emptyDir"] == {}
    kubernetes_validate.validate(dep, K8S_VERSION, strict=True)
