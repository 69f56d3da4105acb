"""SBOMs and build provenance for the images torchslim builds.

``collect`` gathers the inputs (an image's files + the lock + the slimming ledger),
``cyclonedx`` / ``spdx`` render them, ``provenance`` writes the in-toto statement, and
``artifacts`` turns the three documents into OCI referrers and files.
"""
