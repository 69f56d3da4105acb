"""Bounds on what one analysis may read, so a hostile image cannot exhaust the machine."""

from __future__ import annotations

from dataclasses import dataclass

from torchslim.errors import IntegrityError

GiB = 1 << 30
MiB = 1 << 20

# What one JSON document of an image may be, in every source (layout, archive, registry),
# as containerd bounds them: manifests and indexes 4 MiB, configs 16 MiB; nesting 64 deep
# (real ones are under 10).
MANIFEST_MAX = 4 * MiB
CONFIG_MAX = 16 * MiB
JSON_DEPTH_MAX = 64
DOCUMENT_MAX = 64 * MiB  # an attached document (SBOM, provenance)


@dataclass(frozen=True)
class Limits:
    """``max_uncompressed``: all layers together, after decompression.

    ``max_ratio``: uncompressed/compressed bytes of one layer, checked once the
    layer has produced ``ratio_floor`` bytes (small layers of empty files
    legitimately compress 100:1). ``max_entries``: tar members in all layers.
    ``max_capture``: bytes of metadata files (dpkg status, RECORD) held in memory.
    """

    max_uncompressed: int = 64 * GiB
    max_ratio: float = 500.0
    ratio_floor: int = 256 * MiB
    max_entries: int = 10_000_000
    max_capture: int = 256 * MiB
    max_capture_file: int = 16 * MiB


class LimitExceeded(IntegrityError):
    """The image is larger or more compressible than the limits allow."""


class Budget:
    """Running totals across all layers of one analysis."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.uncompressed = 0
        self.entries = 0
        self.captured = 0

    def add_bytes(self, n: int, what: str) -> None:
        self.uncompressed += n
        if self.uncompressed > self.limits.max_uncompressed:
            raise LimitExceeded(
                f"{what}: image decompresses to more than "
                f"{self.limits.max_uncompressed / GiB:.1f} GiB (the --max-uncompressed limit); "
                "it may be a decompression bomb, or raise the limit if the image is really that big"
            )

    def check_claim(self, size: int, what: str) -> None:
        """A tar header's size, before any byte of it is read."""
        if self.uncompressed + size > self.limits.max_uncompressed:
            raise LimitExceeded(
                f"{what}: claims {size} bytes, over the "
                f"{self.limits.max_uncompressed / GiB:.1f} GiB limit on the uncompressed image; "
                "the layer is corrupt or hostile"
            )

    def add_entry(self, what: str) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise LimitExceeded(
                f"{what}: more than {self.limits.max_entries} tar entries; "
                "the image is hostile or raise the entry limit"
            )

    def can_capture(self, n: int) -> bool:
        if n > self.limits.max_capture_file or self.captured + n > self.limits.max_capture:
            return False
        self.captured += n
        return True
