"""torchslim: small, non-root, reproducible container images for PyTorch services."""

__version__ = "0.1.0"
