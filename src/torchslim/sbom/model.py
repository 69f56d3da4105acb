"""What an SBOM says, as plain values: no build internals, no serializer types.

``collect`` fills these from an image's files (or a rootfs tree), the lock and the
slimming ledger; ``cyclonedx`` and ``spdx`` render them. Everything is frozen and
every collection is a sorted tuple, so the same inputs always render the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NOASSERTION = "NOASSERTION"


@dataclass(frozen=True)
class ImageIdentity:
    """The image the SBOM describes, pinned by its manifest digest."""

    name: str  # "hello-torch" or "registry.example.com/team/svc"
    digest: str  # manifest digest, "sha256:<hex>"
    platform: str = "linux/amd64"
    tag: str | None = None
    created: str = "1970-01-01T00:00:00Z"  # the image's created date (SOURCE_DATE_EPOCH)
    description: str | None = None
    licenses: str | None = None  # org.opencontainers.image.licenses, when set


@dataclass(frozen=True)
class BaseRef:
    """What the image was built on: ``debian:bookworm`` (torchslim's own) or a pinned image."""

    name: str  # "debian:bookworm" or "docker.io/library/python:3.11-slim"
    digest: str | None = None  # manifest digest of an image base; None for torchslim's Debian

    @property
    def is_image(self) -> bool:
        return self.digest is not None


@dataclass(frozen=True)
class OsRelease:
    """``/etc/os-release`` of the image: what a scanner matches vulnerabilities against."""

    id: str = ""  # "debian"
    version_id: str = ""  # "12"
    codename: str = ""  # "bookworm"
    pretty_name: str = ""

    @property
    def distro(self) -> str:
        """The purl ``distro`` qualifier, as syft writes it: ``debian-12``."""
        if self.id and self.version_id:
            return f"{self.id}-{self.version_id}"
        return self.codename or self.id


@dataclass(frozen=True)
class LicenseRef:
    """A license that is not on the SPDX list: its ``LicenseRef-…`` id and where it is written."""

    id: str  # "LicenseRef-debian-GPL-2-plus-with-Texinfo-exception"
    name: str  # the name as the package wrote it
    text: str  # what we can quote: the DEP-5 license paragraph, or where to read it


@dataclass(frozen=True)
class License:
    """A package's declared license as an SPDX expression (``None``: NOASSERTION)."""

    expression: str | None = None
    source: str = "none"  # which field or file it came from (see docs/sbom.md)
    refs: tuple[LicenseRef, ...] = ()

    @property
    def spdx(self) -> str:
        return self.expression or NOASSERTION


@dataclass(frozen=True)
class Removal:
    """One path slimming took out of (or stripped in) the image, by rule, with its bytes."""

    rule: str
    path: str  # image path, "/usr/local/lib/python3.11/dist-packages/torch/test/x"
    bytes: int
    # The package that installed the path, when the build knows it (a Debian package
    # name, or a Python distribution name); else it is found from RECORD ownership.
    owner: str | None = None

    def to_json(self) -> list[str | int | None]:
        """``[rule, path, bytes, owner]``: compact, for a layer cache entry."""
        return [self.rule, self.path, self.bytes, self.owner]

    @classmethod
    def from_json(cls, row: list[str | int | None]) -> Removal:
        rule, path, nbytes, owner = (row + [None])[:4]
        return cls(str(rule), str(path), int(nbytes or 0), None if owner is None else str(owner))


@dataclass(frozen=True)
class RemovedByRule:
    """Per component and rule: how many files and bytes were removed."""

    rule: str
    files: int
    bytes: int


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str
    arch: str
    source: str | None = None  # source package, when it differs from the binary's name
    source_version: str | None = None  # when it differs from the binary's version
    license: License = field(default_factory=License)
    sha256: str | None = None  # of the .deb, "<hex>", from the signed Packages index
    filename: str | None = None  # pool path, "pool/main/z/zlib/zlib1g_….deb"
    mirror: str | None = None
    removed: tuple[RemovedByRule, ...] = ()


@dataclass(frozen=True)
class PythonDist:
    name: str  # as in METADATA
    version: str
    location: str  # the *.dist-info directory, image path
    license: License = field(default_factory=License)
    wheel: str | None = None  # wheel filename from the lock
    sha256: str | None = None  # of the wheel, "<hex>"
    url: str | None = None  # where the wheel was downloaded from
    index: str | None = None  # the index or find-links location that served it
    vendored_by: str | None = None  # normalized name of the distribution that vendors this one
    removed: tuple[RemovedByRule, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()  # extra (name, value), e.g. torch's variant


@dataclass(frozen=True)
class TorchInfo:
    version: str
    variant: str  # "cpu", "cu130"
    cuda: str | None = None  # "13.0"


@dataclass(frozen=True)
class SbomInputs:
    """Everything both SBOM formats are rendered from."""

    image: ImageIdentity
    base: BaseRef
    os: OsRelease = field(default_factory=OsRelease)
    debian: tuple[DebianPackage, ...] = ()
    python: tuple[PythonDist, ...] = ()
    torch: TorchInfo | None = None
    tool_version: str = ""
    # Removed bytes no component's files account for (e.g. a file slimming found outside
    # any distribution): kept so the totals add up.
    unattributed: tuple[RemovedByRule, ...] = ()
