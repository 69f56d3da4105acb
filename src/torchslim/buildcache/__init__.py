"""The build cache a fleet shares through a registry (``--cache-from``, ``--cache-to``).

One plain OCI image manifest per finished layer, tagged by the layer's input key (see
``entry``); read by ``remote.CacheSources``, written by ``export.export_entries``.
"""

from torchslim.buildcache.entry import CacheEntry, tag_for
from torchslim.buildcache.export import ExportResult, export_entries
from torchslim.buildcache.remote import CacheSources, FetchStats, cache_repository

__all__ = [
    "CacheEntry",
    "CacheSources",
    "ExportResult",
    "FetchStats",
    "cache_repository",
    "export_entries",
    "tag_for",
]
