"""Dates in an image: fixed by the inputs, never the wall clock.

With ``SOURCE_DATE_EPOCH`` every date is that. Without it, the image's date is the
newest upload time in the lock, and each Python layer's file times come from its own
wheels' upload times only, so a torch layer is byte-identical across services whose
other dependencies differ. The OS layer uses 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from torchslim.oci.mutate import rfc3339


@dataclass(frozen=True)
class Dates:
    source_date_epoch: int | None
    uploads: Mapping[str, int]  # package (PEP 503 name) -> newest upload time of its files

    @property
    def image_epoch(self) -> int:
        if self.source_date_epoch is not None:
            return self.source_date_epoch
        return max(self.uploads.values(), default=0)

    @property
    def created(self) -> str:
        """The image's ``created`` (RFC 3339, UTC)."""
        return rfc3339(self.image_epoch)

    def layer_epoch(self, packages: Iterable[str] = ()) -> int:
        """File times of a layer made from ``packages`` (none: the OS and user layers)."""
        if self.source_date_epoch is not None:
            return self.source_date_epoch
        return max((self.uploads.get(n, 0) for n in packages), default=0)
