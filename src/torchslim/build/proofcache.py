"""The proof's cache: each part keyed by the digests of exactly what it checked.

A whole proof (served, entry, smoke, loads) is keyed by the image digest, the code that
checked it and the smoke config: a no-change rebuild proves nothing again. The library
loads alone are keyed by the digests of the layers that hold shared objects (and the
checker's code): an app edit changes the image digest but not those layers, so the
rebuild serves the new image and imports its entry, and loads nothing it loaded before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from torchslim.atomic import write_atomic
from torchslim.cache import cache_root
from torchslim.oci.image import Image
from torchslim.proof import checker, elfread, prober
from torchslim.proof import serve as servemod
from torchslim.proof.result import LOADS, Deferred, Failure, Proof
from torchslim.proof.serve import ServeSpec

# Bump when what a proof checks changes; with the checking code it keys cached proofs.
PROOF_FORMAT = 2


def _code() -> str:
    """The checker's, the server's and the prober's source, by digest."""
    parts = (checker, elfread, prober, servemod)
    return hashlib.sha256(b"".join(Path(str(m.__file__)).read_bytes() for m in parts)).hexdigest()


def proof_key(image: Image, smoke: Sequence[str], service: ServeSpec | None) -> str:
    """The whole proof: the image, the code, the smoke command and requests (bodies by
    digest)."""
    asked = None
    if service is not None:
        asked = [
            service.port,
            service.health,
            [[r.method, r.path, r.status, hashlib.sha256(r.body or b"").hexdigest(), r.headers]
             for r in service.requests],
            list(service.writable),
            service.census,
        ]  # fmt: skip
    text = json.dumps([PROOF_FORMAT, _code(), image.digest(), list(smoke), asked], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _read(name: str) -> dict[str, object] | None:
    try:
        data = json.loads((cache_root() / "proofs" / name).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cached_proof(key: str) -> Proof | None:
    data = _read(f"{key}.json")
    try:
        return Proof.from_dict(data) if data is not None else None
    except (KeyError, TypeError, ValueError):
        return None


def save_proof(key: str, proof: Proof) -> None:
    write_atomic(cache_root() / "proofs" / f"{key}.json", json.dumps(proof.to_dict()))


def _has_shared_objects(tree: Path) -> bool:
    return any(any(".so" in name for name in files) for _, _, files in os.walk(tree))


def loads_key(image: Image, trees: Sequence[Path], python_exe: str) -> str:
    """The layers whose files the loads check (those holding shared objects), the
    interpreter and the checker's code."""
    digests = [
        layer.digest for layer, tree in zip(image.layers(), trees, strict=True)
        if _has_shared_objects(tree)
    ]  # fmt: skip
    checker_code = hashlib.sha256(
        b"".join(Path(str(m.__file__)).read_bytes() for m in (checker, elfread))
    ).hexdigest()
    text = json.dumps([PROOF_FORMAT, checker_code, python_exe, digests])
    return hashlib.sha256(text.encode()).hexdigest()


def cached_loads(key: str) -> Proof | None:
    """An earlier proof's load results for the same layers (counts, deferred, warnings)."""
    data = _read(f"loads-{key}.json")
    try:
        return Proof.from_dict(data) if data is not None else None
    except (KeyError, TypeError, ValueError):
        return None


def save_loads(key: str, proof: Proof) -> None:
    """Keep the loads of a proof whose loads did not fail it."""
    if any(f.check in LOADS for f in proof.failures) or proof.status == "not-proven":
        return
    keep = Proof(
        "proven", proof.method, libraries=proof.libraries, extensions=proof.extensions,
        deferred=proof.deferred, skipped=proof.skipped, warnings=proof.warnings,
    )  # fmt: skip
    write_atomic(cache_root() / "proofs" / f"loads-{key}.json", json.dumps(keep.to_dict()))


def with_loads(proof: Proof, loads: Proof) -> Proof:
    """``proof`` (run without loading the unchanged layers) with the cached load results."""
    warnings: tuple[Failure, ...] = (
        tuple(w for w in proof.warnings if w.check not in LOADS) + loads.warnings
    )
    deferred: tuple[Deferred, ...] = loads.deferred
    return dataclasses.replace(
        proof,
        libraries=loads.libraries,
        extensions=loads.extensions,
        deferred=deferred,
        skipped=loads.skipped,
        warnings=warnings,
    )
