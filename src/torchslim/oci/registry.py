"""OCI distribution registries: the public face of reading from and pushing to a registry.

``reference`` parses names, ``distribution`` speaks the HTTP API (auth,
retries), ``pull`` is the lazy image source and ``push`` the sink. Import
from here.
"""

from __future__ import annotations

from torchslim.oci.auth import Credentials
from torchslim.oci.distribution import RegistryClient, TransportFailed, pull_scope, push_scope
from torchslim.oci.pull import RegistryImage, read_registry_image
from torchslim.oci.push import push_image, push_index
from torchslim.oci.reference import Reference, as_reference, is_loopback, parse_reference
from torchslim.oci.upload import CHUNK_SIZE, CHUNKED_THRESHOLD, PushResult

__all__ = [
    "CHUNKED_THRESHOLD",
    "CHUNK_SIZE",
    "Credentials",
    "PushResult",
    "Reference",
    "RegistryClient",
    "RegistryImage",
    "TransportFailed",
    "as_reference",
    "is_loopback",
    "parse_reference",
    "pull_scope",
    "push_image",
    "push_index",
    "push_scope",
    "read_registry_image",
]
