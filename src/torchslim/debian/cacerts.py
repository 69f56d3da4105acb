"""The CA bundle that ``update-ca-certificates`` would write, built without running it."""

from __future__ import annotations

from pathlib import Path

MOZILLA = Path("usr/share/ca-certificates")
BUNDLE = Path("etc/ssl/certs/ca-certificates.crt")
CONF = Path("etc/ca-certificates.conf")


def write_ca_bundle(dest: Path) -> int:
    """Concatenate every ``usr/share/ca-certificates/**/*.crt`` in C-locale order (as the
    postinst lists them in /etc/ca-certificates.conf), each ending in a newline; returns the
    number of certificates. Also writes the conf file so the image looks configured."""
    base = dest / MOZILLA
    certs = sorted(
        (p.relative_to(base).as_posix() for p in base.rglob("*.crt") if p.is_file()),
        key=lambda s: s.encode(),
    )
    chunks: list[bytes] = []
    for rel in certs:
        data = (base / rel).read_bytes()
        chunks.append(data if data.endswith(b"\n") else data + b"\n")
    out = dest / BUNDLE
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"".join(chunks))
    out.chmod(0o644)
    conf = dest / CONF
    header = (
        "# Written by torchslim: the certificates in /usr/share/ca-certificates that make up\n"
        "# /etc/ssl/certs/ca-certificates.crt (what update-ca-certificates would use).\n"
    )
    conf.write_text(header + "".join(c + "\n" for c in certs))
    conf.chmod(0o644)
    return len(certs)
