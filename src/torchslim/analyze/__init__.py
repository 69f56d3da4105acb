"""`torchslim analyze` / `torchslim diff`: what is in any image, why it is big, what to remove.

Entry points for the CLI::

    image = open_image("docker-archive:app.tar")
    result = analyze(image, name=reference_name(ref))
    code = gate_exit_code(result, max_size=..., fail_on=[...])
"""

from __future__ import annotations

from torchslim.analyze.diff import Delta, DiffResult
from torchslim.analyze.diff import diff as _diff
from torchslim.analyze.engine import analyze_image
from torchslim.analyze.gates import EXIT_FINDING, EXIT_OK, EXIT_SIZE, gate_exit_code, parse_size
from torchslim.analyze.model import Analysis, Finding
from torchslim.oci.image import Image
from torchslim.oci.limits import Limits
from torchslim.oci.transport import open_image, reference_name

__all__ = [
    "EXIT_FINDING",
    "EXIT_OK",
    "EXIT_SIZE",
    "Analysis",
    "Delta",
    "DiffResult",
    "Finding",
    "Limits",
    "analyze",
    "diff",
    "gate_exit_code",
    "open_image",
    "parse_size",
    "reference_name",
]


def analyze(image: Image, *, name: str, limits: Limits = Limits()) -> Analysis:  # noqa: B008
    """Stream every layer once, merge, classify and return the findings."""
    return analyze_image(image, name=name, limits=limits)


def diff(a: Analysis, b: Analysis) -> DiffResult:
    """Size deltas per category and package, shared layers, findings gained and lost."""
    return _diff(a, b)
