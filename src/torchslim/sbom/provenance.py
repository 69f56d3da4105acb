"""Build provenance: an in-toto Statement v1 with a SLSA Provenance v1 predicate.

The statement's subject is the image manifest. ``externalParameters`` hold what the
user asked for (the command and its options), ``internalParameters`` what torchslim
decided (profile, platform, compression); ``resolvedDependencies`` every input by
digest: the config, the lock, the Debian release files, the base image, the git
revision. Times are SOURCE_DATE_EPOCH (or left out), the invocation id is derived from
the inputs: the same build gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torchslim.sbom.model import ImageIdentity

MEDIA_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:torchslim:buildtype:image:v1"
LOCAL_BUILDER = "urn:torchslim:builder:local"
_NAMESPACE = uuid.UUID("0c8f2f0a-6a3e-5d4f-8c1b-2e7a9d5b4f31")

Json = Any


@dataclass(frozen=True)
class Material:
    """One input by digest, a SLSA ResourceDescriptor (``sha256`` or ``gitCommit``)."""

    name: str
    uri: str
    digest: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Json]:
        out: dict[str, Json] = {"name": self.name, "uri": self.uri, "digest": dict(self.digest)}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class ProvenanceInputs:
    image: ImageIdentity
    command: Sequence[str]  # argv as the user typed it, e.g. ["torchslim", "build", "."]
    options: Mapping[str, Json] = field(default_factory=dict, hash=False)
    internal: Mapping[str, Json] = field(default_factory=dict, hash=False)
    materials: Sequence[Material] = ()
    byproducts: Sequence[Material] = ()  # e.g. the SBOMs, by digest
    source_date_epoch: int | None = None
    builder_id: str = LOCAL_BUILDER
    tool_version: str = ""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_material(path: Path, name: str, root: Path | None = None) -> Material:
    """A file by its sha256; ``uri`` is relative to ``root`` so checkouts elsewhere agree."""
    rel = path.resolve().relative_to(root.resolve()) if root is not None else path
    return Material(name, f"file:{rel.as_posix()}", {"sha256": sha256_file(path)})


def bytes_material(name: str, uri: str, data: bytes) -> Material:
    """E.g. a Debian ``InRelease`` as fetched: ``uri`` is where it came from."""
    return Material(name, uri, {"sha256": hashlib.sha256(data).hexdigest()})


def image_material(name: str, reference: str, digest: str) -> Material:
    """A base image: ``docker://REF`` pinned by its manifest digest."""
    algo, _, hexpart = digest.partition(":")
    return Material(name, f"docker://{reference.removeprefix('docker://')}", {algo: hexpart})


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_material(root: Path) -> Material | None:
    """The checkout's commit (``git rev-parse HEAD``), its remote, and whether it is dirty.
    None when ``root`` is not in a git checkout (or git is not installed)."""
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return None
    remote = _git(root, "config", "--get", "remote.origin.url")
    uri = (
        f"git+{remote}"
        if remote
        else "git+file:" + (_git(root, "rev-parse", "--show-toplevel") or "")
    )
    annotations = (
        {"dirty": "true"} if _git(root, "status", "--porcelain", "--untracked-files=no") else {}
    )
    return Material("source", uri, {"gitCommit": commit}, annotations)


def _time(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def statement(inputs: ProvenanceInputs) -> dict[str, Json]:
    """The in-toto statement as a JSON-ready dict."""
    algo, _, hexpart = inputs.image.digest.partition(":")
    external = {"command": list(inputs.command), "options": dict(inputs.options)}
    seed = json.dumps([inputs.image.digest, external, inputs.tool_version], sort_keys=True)
    metadata: dict[str, Json] = {"invocationId": f"urn:uuid:{uuid.uuid5(_NAMESPACE, seed)}"}
    when = _time(inputs.source_date_epoch)
    if when is not None:
        metadata["startedOn"] = metadata["finishedOn"] = when
    run: dict[str, Json] = {
        "builder": {"id": inputs.builder_id, "version": {"torchslim": inputs.tool_version}},
        "metadata": metadata,
    }
    if inputs.byproducts:
        run["byproducts"] = [m.to_json() for m in inputs.byproducts]
    subject_name = (
        f"{inputs.image.name}:{inputs.image.tag}" if inputs.image.tag else inputs.image.name
    )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {algo: hexpart}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"platform": inputs.image.platform, **inputs.internal},
                "resolvedDependencies": [m.to_json() for m in inputs.materials],
            },
            "runDetails": run,
        },
    }


def render_provenance(inputs: ProvenanceInputs) -> bytes:
    """The statement as JSON bytes: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(statement(inputs), indent=2, sort_keys=True) + "\n").encode()
