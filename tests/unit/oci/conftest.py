"""Fixtures for the oci tests live in ocikit (importable by the tests without clashes)."""

from ocikit import image_factory, static_hello, store, tree

__all__ = ["image_factory", "static_hello", "store", "tree"]
