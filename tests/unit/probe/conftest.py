"""Fixtures for the probe tests live in probekit (importable by the tests without clashes)."""

from probekit import make_image, store

__all__ = ["make_image", "store"]
