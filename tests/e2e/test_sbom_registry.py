"""Issue 13 on a real loopback registry: the example's build pushes its SBOMs and provenance
as OCI referrers (Debian's docker-registry has no referrers API: the ``sha256-<hex>`` tag
lists them), ``torchslim sbom`` reads them back, and ``torchslim push oci:DIR`` carries a
layout's referrers along."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchslim.oci.distribution import RegistryClient
from torchslim.oci.referrers import (
    fallback_tag,
    layout_referrers,
    registry_document,
    registry_referrers,
)

from .conftest import copy_example

pytestmark = [pytest.mark.e2e, pytest.mark.network]
TAG = "v1.2-pytorch2.13-cpu"
TITLES = {
    "application/vnd.cyclonedx+json": "sbom.cdx.json",
    "application/spdx+json": "sbom.spdx.json",
    "application/vnd.in-toto+json": "sbom.provenance.json",
}


def torchslim(*args: str) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "torchslim.cli", *args],
        capture_output=True,
        check=False,
        timeout=1800,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc


def test_a_pushed_build_carries_its_sbom_and_provenance(
    ts_cache: Path, registry_host: str, tmp_path: Path
) -> None:
    host = registry_host
    project = copy_example(tmp_path / "svc")
    docs, report = tmp_path / "sbom", tmp_path / "r.json"
    torchslim("build", str(project), "--tls-verify", "false", "--sbom", str(docs),
              "--output", f"docker://{host}/team/hello-sbom", "--json", str(report))  # fmt: skip
    built = json.loads(report.read_text())
    digest = built["digest"]
    assert len(built["referrers"]) == 3
    with RegistryClient(host, tls_verify=False) as client:
        found = registry_referrers(client, "team/hello-sbom", digest)
        assert sorted(d["artifactType"] for d in found) == sorted(TITLES)
        for d in found:
            data = registry_document(client, "team/hello-sbom", d)
            assert data == (docs / TITLES[d["artifactType"]]).read_bytes()
        # Listed under the fallback tag, as distribution-spec 1.1 says for such registries.
        index, _, _ = client.get_manifest("team/hello-sbom", fallback_tag(digest))
        assert [m["digest"] for m in json.loads(index)["manifests"]] == built["referrers"]
    ref = f"docker://{host}/team/hello-sbom:{TAG}"
    cdx = torchslim("sbom", ref, "--tls-verify", "false").stdout
    assert cdx == (docs / "sbom.cdx.json").read_bytes()
    prov = json.loads((docs / "sbom.provenance.json").read_bytes())
    assert prov["subject"][0]["digest"] == {"sha256": digest[7:]}

    # The same build to a layout (warm), then `torchslim push`: the referrers go along,
    # as the same manifests.
    layout = tmp_path / "oci"
    torchslim("build", str(project), "--output", f"oci:{layout}")
    out = torchslim("push", f"oci:{layout}", f"docker://{host}/team/copied:v1",
                    "--tls-verify", "false").stdout.decode()  # fmt: skip
    assert "Attached 3 referrer(s)" in out
    with RegistryClient(host, tls_verify=False) as client:
        copied = registry_referrers(client, "team/copied", digest)
    in_layout = layout_referrers(layout, digest)
    assert sorted(d["digest"] for d in copied) == sorted(d["digest"] for d in in_layout)
    # The SBOMs are the pushed build's; its provenance names the other --output.
    assert set(built["referrers"][:2]) < {d["digest"] for d in in_layout}
