"""The SARIF 2.1.0 envelope shared by `analyze --sarif` and `lint --format sarif`."""

from __future__ import annotations

from typing import Any

from torchslim import __version__

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def sarif_log(rules: list[dict[str, Any]], results: list[dict[str, Any]]) -> dict[str, Any]:
    """One run by torchslim with these rule descriptors and results."""
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "torchslim",
                        "version": __version__,
                        "informationUri": "https://github.com/torchslim/torchslim",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
