"""`torchslim diff A B`: what changed between two analyses, in bytes."""

from __future__ import annotations

from dataclasses import dataclass

from torchslim.analyze.model import Analysis


@dataclass(frozen=True)
class Delta:
    key: str
    title: str
    before: int
    after: int

    @property
    def change(self) -> int:
        return self.after - self.before


@dataclass
class DiffResult:
    a: str
    b: str
    compressed: Delta
    uncompressed: Delta
    categories: list[Delta]
    packages: list[Delta]  # key "python:torch", "debian:libc6"
    layers_shared: int
    layers_a: int
    layers_b: int
    shared_bytes: int  # compressed bytes of shared layers: not pulled again
    findings_added: list[str]
    findings_removed: list[str]


def _deltas(a: dict[str, tuple[str, int]], b: dict[str, tuple[str, int]]) -> list[Delta]:
    keys = set(a) | set(b)
    out = [
        Delta(k, (b.get(k) or a.get(k) or (k, 0))[0], a.get(k, ("", 0))[1], b.get(k, ("", 0))[1])
        for k in keys
    ]
    return sorted((d for d in out if d.change), key=lambda d: (-abs(d.change), d.key))


def diff(a: Analysis, b: Analysis) -> DiffResult:
    cats_a = {c.id: (c.title, c.bytes) for c in a.categories}
    cats_b = {c.id: (c.title, c.bytes) for c in b.categories}
    pk_a = {f"{p.kind}:{p.name}": (f"{p.name} {p.version}", p.bytes) for p in a.packages}
    pk_b = {f"{p.kind}:{p.name}": (f"{p.name} {p.version}", p.bytes) for p in b.packages}
    ids_a = {lay.diff_id or lay.digest for lay in a.layers}
    shared = [lay for lay in b.layers if (lay.diff_id or lay.digest) in ids_a]
    fa = {f.id for f in a.findings}
    fb = {f.id for f in b.findings}
    return DiffResult(
        a=a.image,
        b=b.image,
        compressed=Delta("compressed", "compressed", a.compressed, b.compressed),
        uncompressed=Delta("uncompressed", "uncompressed", a.uncompressed, b.uncompressed),
        categories=_deltas(cats_a, cats_b),
        packages=_deltas(pk_a, pk_b),
        layers_shared=len(shared),
        layers_a=len(a.layers),
        layers_b=len(b.layers),
        shared_bytes=sum(lay.compressed for lay in shared),
        findings_added=sorted(fb - fa),
        findings_removed=sorted(fa - fb),
    )
