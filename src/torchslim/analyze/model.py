"""The result of one analysis: plain dataclasses, serialized by ``report``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torchslim.oci.flatten import MergedView
from torchslim.units import BANDWIDTHS, pull_seconds

SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass
class LayerInfo:
    index: int
    digest: str
    diff_id: str
    media_type: str
    compressed: int
    uncompressed: int
    entries: int
    created_by: str
    added_bytes: int = 0  # bytes of this layer's files still visible in the merged view
    wasted_bytes: int = 0  # bytes of this layer's files that a later entry hides


@dataclass
class CategoryTotal:
    id: str
    title: str
    why: str
    bytes: int = 0
    files: int = 0
    examples: list[tuple[str, int]] = field(default_factory=list)  # largest first
    by_owner: dict[str, int] = field(default_factory=dict)  # "python:nvidia-cublas-cu12" → bytes


@dataclass
class PackageTotal:
    kind: str  # python | debian | conda
    name: str
    version: str
    bytes: int
    files: int
    dev: bool = False
    location: str = ""


@dataclass
class Answers:
    compiler_present: bool
    compiler_evidence: list[str]
    devel_base: bool
    devel_evidence: list[str]
    dev_packages: list[str]
    runs_as_root: bool
    root_evidence: str


@dataclass
class Finding:
    id: str
    severity: str
    title: str
    bytes: int
    paths: list[str]
    fix: str
    why: str

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)


@dataclass
class Estimate:
    """Size after `torchslim build` with the inference profile, and pull times."""

    removable_bytes: int
    uncompressed: int
    compressed: int
    removable_by: dict[str, int]

    def pull_seconds(self, compressed: int) -> dict[str, float]:
        return {k: pull_seconds(compressed, bw) for k, bw in BANDWIDTHS.items()}


@dataclass
class Analysis:
    image: str
    digest: str
    platform: str
    user: str
    healthcheck: bool
    compressed: int
    uncompressed: int
    files_bytes: int  # bytes of regular files visible in the merged view
    file_count: int
    layers: list[LayerInfo]
    categories: list[CategoryTotal]
    packages: list[PackageTotal]
    wasted_bytes: int
    wasted_top: list[tuple[str, int, int, int, str]]  # path, bytes, layer, by_layer, how
    answers: Answers
    findings: list[Finding]
    estimate: Estimate
    view: MergedView = field(repr=False, compare=False, default_factory=MergedView)

    def category(self, cid: str) -> CategoryTotal | None:
        return next((c for c in self.categories if c.id == cid), None)

    def finding(self, fid: str) -> Finding | None:
        return next((f for f in self.findings if f.id == fid), None)

    def package(self, kind: str, name: str) -> PackageTotal | None:
        return next((p for p in self.packages if p.kind == kind and p.name == name), None)

    def history(self, path: str) -> list[dict[str, Any]]:
        """Which layer added, overwrote or deleted ``path``."""
        return [{"layer": e.layer, "action": e.action} for e in self.view.history.get(path, [])]
