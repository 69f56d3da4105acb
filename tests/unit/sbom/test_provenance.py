"""The in-toto statement with a SLSA v1 predicate: valid for the in-toto bindings,
deterministic, and naming every input by digest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from support.sbom import CREATED, DIGEST

from torchslim.sbom.model import ImageIdentity
from torchslim.sbom.provenance import (
    PREDICATE_TYPE,
    ProvenanceInputs,
    bytes_material,
    file_material,
    git_material,
    image_material,
    render_provenance,
)

IMAGE = ImageIdentity("hello-torch", DIGEST, tag="v1", created=CREATED)


def _inputs(tmp_path: Path) -> ProvenanceInputs:
    (tmp_path / "torchslim.toml").write_text('name = "hello-torch"\n')
    (tmp_path / "pylock.toml").write_text('lock-version = "1.0"\n')
    return ProvenanceInputs(
        image=IMAGE,
        command=["torchslim", "build", ".", "--output", "oci:out"],
        options={"output": "oci:out", "profile": None, "platform": ["linux/amd64"]},
        internal={"profile": "inference", "compression": "gzip"},
        materials=[
            file_material(tmp_path / "torchslim.toml", "config", tmp_path),
            file_material(tmp_path / "pylock.toml", "lock", tmp_path),
            bytes_material(
                "debian-release",
                "http://deb.debian.org/debian/dists/bookworm/InRelease",
                b"Origin: Debian\n",
            ),
            image_material("base", "python:3.11-slim", "sha256:" + "12" * 32),
        ],
        source_date_epoch=1_700_000_000,
        tool_version="0.1.0",
    )


def test_statement_parses_with_the_in_toto_bindings(tmp_path: Path) -> None:
    data = render_provenance(_inputs(tmp_path))
    doc = json.loads(data)
    pb = json_format.Parse(data, statement_pb2.Statement())  # strict: unknown fields fail
    Statement.copy_from_pb(pb).validate()
    assert doc["predicateType"] == PREDICATE_TYPE
    json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
    assert doc["subject"] == [{"name": "hello-torch:v1", "digest": {"sha256": "ab" * 32}}]


def test_statement_names_inputs_and_is_byte_identical(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    data = render_provenance(inputs)
    assert render_provenance(_inputs(tmp_path)) == data
    pred = json.loads(data)["predicate"]
    deps = {d["name"]: d for d in pred["buildDefinition"]["resolvedDependencies"]}
    assert deps["config"]["uri"] == "file:torchslim.toml"
    assert len(deps["lock"]["digest"]["sha256"]) == 64
    assert deps["base"] == {
        "name": "base",
        "uri": "docker://python:3.11-slim",
        "digest": {"sha256": "12" * 32},
    }
    assert pred["buildDefinition"]["externalParameters"]["command"][:2] == ["torchslim", "build"]
    run = pred["runDetails"]
    assert run["builder"]["version"] == {"torchslim": "0.1.0"}
    assert run["metadata"]["startedOn"] == run["metadata"]["finishedOn"] == "2023-11-14T22:13:20Z"
    assert run["metadata"]["invocationId"].startswith("urn:uuid:")
    # Other inputs, other invocation id; no time at all without SOURCE_DATE_EPOCH.
    from dataclasses import replace

    other = json.loads(render_provenance(replace(inputs, command=["torchslim", "build", "x"])))
    assert (
        other["predicate"]["runDetails"]["metadata"]["invocationId"]
        != run["metadata"]["invocationId"]
    )
    bare = json.loads(render_provenance(replace(inputs, source_date_epoch=None)))
    assert "startedOn" not in bare["predicate"]["runDetails"]["metadata"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_revision_of_a_checkout(tmp_path: Path) -> None:
    repo = tmp_path / "svc"
    repo.mkdir()
    assert git_material(repo) is None  # not a checkout (yet)
    env = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "torchslim.toml").write_text("x\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", *env, "-C", str(repo), "commit", "-qm", "init"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "origin", "https://git.example/team/svc.git"],
        check=True,
    )
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    m = git_material(repo)
    assert m is not None
    assert m.digest == {"gitCommit": head} and m.uri == "git+https://git.example/team/svc.git"
    assert not m.annotations
    (repo / "torchslim.toml").write_text("changed\n")
    dirty = git_material(repo)
    assert dirty is not None and dirty.annotations == {"dirty": "true"}
