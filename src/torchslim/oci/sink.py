"""Sinks: where a finished image (or a multi-platform set) is written. One protocol, three kinds.

A sink is chosen from a :class:`~torchslim.oci.transport.Location` before any work is
done (``check`` refuses an existing output early), then written once the images are
built: building never writes, writing never builds (ko's build vs publish).

Each image may come with artifacts (SBOMs, provenance) to attach as OCI 1.1 referrers:
a layout holds their blobs (its ``index.json`` still names the image alone, so every tool
reads it), a registry gets them after the image (the ``sha256-<hex>`` tag where it has no
referrers API); a docker-archive has no place for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from torchslim.atomic import refuse_existing
from torchslim.config import Progress
from torchslim.errors import ConfigError
from torchslim.oci.archive import write_docker_archive
from torchslim.oci.distribution import RegistryClient
from torchslim.oci.image import Image
from torchslim.oci.index import manifest_descriptor
from torchslim.oci.layout import write_oci_index_layout, write_oci_layout
from torchslim.oci.mutate import EPOCH_CREATED
from torchslim.oci.push import push_image, push_index
from torchslim.oci.reference import Reference, parse_reference
from torchslim.oci.referrers import Artifact, add_referrers_to_layout, push_referrers
from torchslim.oci.transport import Location
from torchslim.oci.upload import PushResult


@dataclass(frozen=True)
class Written:
    """What a sink wrote: where, the digest of what it named, and a push's transfer record."""

    location: str
    digest: str
    push: PushResult | None = None
    referrers: tuple[str, ...] = ()  # digests of the artifact manifests attached
    referrers_tag: bool = False  # a registry without the API: listed under sha256-<hex>


Referrers = Sequence[Sequence[Artifact]]  # per image (in order): the artifacts to attach


class Sink(Protocol):
    location: Location

    def check(self) -> None:
        """Refuse early (before a build) what the write would refuse."""

    def write(
        self, images: Sequence[Image], *, name: str, tag: str, referrers: Referrers = ()
    ) -> Written:
        """One image, or several platforms as one index; each with its ``referrers``."""


def _created(image: Image) -> str:
    """The date artifact manifests carry: the image's own (never the clock)."""
    return str(image.config().get("created") or EPOCH_CREATED)


class _FileSink:
    """A path on this machine: refused when it exists, unless ``force``."""

    def __init__(self, location: Location, *, force: bool) -> None:
        self.location = location
        self.force = force

    def check(self) -> None:
        refuse_existing(self.location.path, self.force)


class LayoutSink(_FileSink):
    """An OCI image layout directory; the tag becomes the ref name. ``index.json`` names
    the image (or the platforms' index) alone; referrers are blobs found by their subject."""

    def write(
        self, images: Sequence[Image], *, name: str, tag: str, referrers: Referrers = ()
    ) -> Written:
        ref = self.location.ref or tag
        path = self.location.path
        if len(images) == 1:
            write_oci_layout(images[0], path, ref_name=ref, force=self.force)
            digest = images[0].digest()
        else:
            digest = write_oci_index_layout(list(images), path, ref_name=ref, force=self.force)
        attached: list[str] = []
        for image, artifacts in zip(images, referrers, strict=False):
            if artifacts:
                made = add_referrers_to_layout(
                    path, manifest_descriptor(image), artifacts, _created(image)
                )
                attached += [r.digest for r in made]
        return Written(f"oci:{path}:{ref}", digest, referrers=tuple(attached))


class ArchiveSink(_FileSink):
    """A ``docker load``-able tarball tagged ``localhost/NAME:TAG``; it holds one platform."""

    def write(
        self, images: Sequence[Image], *, name: str, tag: str, referrers: Referrers = ()
    ) -> Written:
        """The image alone: a docker-archive has no place for referrers (``--sbom DIR``)."""
        if len(images) != 1:
            raise ConfigError(
                f"--output {self.location}: a docker-archive holds one platform; "
                "use --output oci:DIR or docker://REF for several platforms"
            )
        repo_tag = self.location.ref or f"localhost/{name}:{tag}"
        write_docker_archive(images[0], self.location.path, repo_tags=[repo_tag], force=self.force)
        return Written(str(self.location), images[0].digest())


class RegistrySink:
    """A registry repository: blobs first, the tag last (a failed push leaves the tag as it was)."""

    def __init__(
        self,
        location: Location,
        *,
        tls_verify: bool,
        progress: Progress | None = None,
        mount_from: Sequence[Reference] = (),
    ) -> None:
        self.location = location
        self.tls_verify = tls_verify
        self.progress = progress
        self.mount_from = mount_from  # repositories that may hold the layers (a build cache)

    def check(self) -> None:
        parse_reference(self.location.target)

    def reference(self, tag: str) -> str:
        """The reference as given, or with the build's tag when it names none."""
        last = self.location.target.rsplit("/", 1)[-1]
        if ":" in last or "@" in last:
            return self.location.target
        return f"{self.location.target}:{tag}"

    def write(
        self, images: Sequence[Image], *, name: str, tag: str, referrers: Referrers = ()
    ) -> Written:
        """The image (the tag last), then its referrers over the same connection."""
        ref = self.reference(tag)
        parsed = parse_reference(ref)
        attached: list[str] = []
        fallback = False
        mounts = [r.repository for r in self.mount_from if r.registry == parsed.registry]
        with RegistryClient(parsed.registry, tls_verify=self.tls_verify) as client:
            if len(images) == 1:
                pushed = push_image(
                    images[0], parsed, progress=self.progress, client=client, mount_from=mounts
                )
            else:
                pushed = push_index(
                    list(images), parsed, progress=self.progress, client=client, mount_from=mounts
                )
            for image, artifacts in zip(images, referrers, strict=False):
                if not artifacts:
                    continue
                made, tagged = push_referrers(
                    client,
                    parsed.repository,
                    manifest_descriptor(image),
                    artifacts,
                    _created(image),
                )
                attached += [r.digest for r in made]
                fallback = fallback or tagged
        return Written(f"docker://{ref}", pushed.manifest_digest, pushed, tuple(attached), fallback)


def sink_for(
    location: Location,
    *,
    force: bool = False,
    tls_verify: bool = True,
    progress: Progress | None = None,
    mount_from: Sequence[Reference] = (),
) -> Sink:
    """The sink for an output location (``oci:``, ``docker-archive:`` or ``docker://``)."""
    if location.transport == "oci":
        return LayoutSink(location, force=force)
    if location.transport == "docker-archive":
        return ArchiveSink(location, force=force)
    if location.transport == "docker":
        return RegistrySink(
            location, tls_verify=tls_verify, progress=progress, mount_from=mount_from
        )
    raise ConfigError(
        f"--output {location}: cannot write there; use oci:DIR, docker-archive:FILE "
        "or docker://REGISTRY/REPO"
    )
