"""The signed release file: verify ``InRelease`` with gpgv and read its SHA256 list."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from torchslim.debian.control import parse_stanza
from torchslim.errors import IntegrityError

KEYRING_DIR = Path("/usr/share/keyrings")


def default_keyring() -> Path:
    """``$TORCHSLIM_DEBIAN_KEYRING`` or the host's debian-archive-keyring."""
    env = os.environ.get("TORCHSLIM_DEBIAN_KEYRING")
    return Path(env) if env else KEYRING_DIR / "debian-archive-keyring.gpg"


@dataclass(frozen=True)
class IndexFile:
    path: str  # relative to dists/<suite>/
    sha256: str  # "sha256:<hex>"
    size: int


@dataclass(frozen=True)
class Release:
    suite: str
    codename: str
    version: str
    fields: dict[str, str]
    files: dict[str, IndexFile]
    url: str = ""  # where it was fetched from
    sha256: str = ""  # "sha256:<hex>" of the signed file as fetched: a provenance input


def verify_clearsigned(data: bytes, url: str, keyring: Path | None = None) -> bytes:
    """Run gpgv on a clearsigned file and return only the signed text (what gpgv vouches for)."""
    keyring = keyring or default_keyring()
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise IntegrityError(
            f"cannot verify {url}: gpgv is not installed; install gpgv (package gpgv/gnupg)"
        )
    if not keyring.is_file():
        raise IntegrityError(
            f"cannot verify {url}: keyring {keyring} not found; install debian-archive-keyring "
            "or set TORCHSLIM_DEBIAN_KEYRING"
        )
    with tempfile.TemporaryDirectory(prefix="torchslim-gpgv-") as tmp:
        signed = Path(tmp) / "InRelease"
        out = Path(tmp) / "InRelease.txt"
        signed.write_bytes(data)
        r = subprocess.run(
            [gpgv, "--keyring", str(keyring), "--output", str(out), str(signed)],
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C", "GNUPGHOME": tmp},
        )
        if r.returncode != 0 or not out.is_file():
            why = (r.stderr.strip().splitlines() or ["no valid signature"])[-1]
            why = why.removeprefix("gpgv: ")
            raise IntegrityError(
                f"signature check failed for {url} ({why}) with keyring {keyring}; the mirror "
                "may be tampered with or stale, use another `mirror`"
            )
        return out.read_bytes()


def parse_release(text: str, url: str, now: datetime | None = None) -> Release:
    """Fields and the SHA256 file list of a (verified) release file; rejects expired ones."""
    f = parse_stanza(text)
    files: dict[str, IndexFile] = {}
    for line in f.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            files[parts[2]] = IndexFile(parts[2], "sha256:" + parts[0], int(parts[1]))
    if not files:
        raise IntegrityError(f"{url} has no SHA256 file list; use another `mirror`")
    valid_until = f.get("Valid-Until")
    if valid_until:
        until = parsedate_to_datetime(valid_until)
        if until < (now or datetime.now(UTC)):
            raise IntegrityError(
                f"{url} expired on {valid_until} (replayed or stale mirror); use another `mirror`"
            )
    return Release(
        suite=f.get("Suite", ""),
        codename=f.get("Codename", ""),
        version=f.get("Version", ""),
        fields={k: v for k, v in f.items() if k not in ("MD5Sum", "SHA256", "SHA1")},
        files=files,
    )
