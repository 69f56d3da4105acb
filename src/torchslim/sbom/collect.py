"""Gather an image's SBOM inputs: its files, the lock, and the slimming ledger.

The image's files say what is installed (what any scanner reads); the lock adds hashes
and where each package came from; the removals say what slimming took out of each
package. Reading the image's layers works the same for a warm build (every layer
cached) and for an image torchslim did not just build.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from torchslim import __version__
from torchslim.errors import ConfigError
from torchslim.oci.image import Image
from torchslim.sbom.attribution import attribute
from torchslim.sbom.dpkg import LockedDeb, debian_packages, os_release
from torchslim.sbom.model import BaseRef, ImageIdentity, PythonDist, Removal, SbomInputs, TorchInfo
from torchslim.sbom.pydists import LockedWheelLike, python_dists
from torchslim.sbom.tree import MetaTree, tree_from_dir, tree_from_image
from torchslim.torchmeta import cuda_version


def torch_info(dists: Iterable[PythonDist]) -> TorchInfo | None:
    """torch's variant from its version's local tag (``2.13.0+cpu``, ``2.14.1+cu130``).

    A plain version (PyPI's default build) has no tag: the variant is then unknown here,
    and the build passes its own ``TorchInfo``.
    """
    for d in dists:
        if d.name.lower() == "torch" and d.vendored_by is None:
            version, _, local = d.version.partition("+")
            if not local:
                return None
            try:
                return TorchInfo(version=version, variant=local, cuda=cuda_version(local))
            except ConfigError:  # a local tag that is not a variant (a custom build)
                return None
    return None


def _with_torch(dist: PythonDist, torch: TorchInfo | None) -> PythonDist:
    if torch is None or dist.name.lower() != "torch" or dist.vendored_by is not None:
        return dist
    props = (
        ("torchslim:torch:variant", torch.variant),
        ("torchslim:torch:cuda", torch.cuda or "none"),
    )
    return replace(dist, properties=dist.properties + props)


def collect(
    source: MetaTree | Image | Path,
    image: ImageIdentity,
    base: BaseRef,
    *,
    locked_wheels: Iterable[LockedWheelLike] = (),
    locked_debs: Iterable[LockedDeb] = (),
    mirror: str | None = None,
    removals: Iterable[Removal] = (),
    torch: TorchInfo | None = None,
    tool_version: str = __version__,
) -> SbomInputs:
    """The SBOM inputs of ``image``, from ``source``: the image itself (its layers are read
    once, nothing goes to disk), an unpacked root filesystem, or an already read tree."""
    if isinstance(source, Path):
        tree = tree_from_dir(source)
    elif isinstance(source, MetaTree):
        tree = source
    else:
        tree = tree_from_image(source)
    debs = debian_packages(tree, locked=locked_debs, mirror=mirror)
    installed = python_dists(tree, locked=locked_wheels)
    owned, orphans = attribute(removals, installed, debian=[d.name for d in debs])
    debs = [replace(d, removed=owned.get(f"deb:{d.name}", ())) for d in debs]
    dists = [replace(i.dist, removed=owned.get(i.dist.location, ())) for i in installed]
    torch = torch or torch_info(dists)
    return SbomInputs(
        image=image,
        base=base,
        os=os_release(tree),
        debian=tuple(debs),
        python=tuple(_with_torch(d, torch) for d in dists),
        torch=torch,
        tool_version=tool_version,
        unattributed=orphans,
    )
