"""Debian mirrors configured on the host (apt sources), to offer when the default is unreachable."""

from __future__ import annotations

from pathlib import Path

from torchslim.debian.control import iter_stanzas, parse_stanza

# Suites of the main archive; security and third-party repositories are not package mirrors.
_DEBIAN_SUITES = {
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "sid",
    "stable",
    "oldstable",
    "testing",
    "unstable",
}


def _is_main_archive(suite: str) -> bool:
    base, _, pocket = suite.partition("-")
    return base in _DEBIAN_SUITES and pocket in ("", "updates", "backports", "proposed-updates")


def _from_list(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        if words[1].startswith("["):  # options: deb [arch=amd64 signed-by=...] URI suite ...
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = ["deb", *words[1:]]
        if len(words) >= 3 and _is_main_archive(words[2]):
            out.append(words[1])
    return out


def _from_sources(text: str) -> list[str]:
    out: list[str] = []
    for chunk in iter_stanzas(text):
        f = parse_stanza(chunk)
        if f.get("Enabled", "yes").lower() == "no" or "deb" not in f.get("Types", "").split():
            continue
        if any(_is_main_archive(s) for s in f.get("Suites", "").split()):
            out.extend(f.get("URIs", "").split())
    return out


def host_mirrors(root: Path = Path("/")) -> list[str]:
    """Debian archive URIs from ``/etc/apt/sources.list`` and ``sources.list.d`` (one-line and
    deb822 ``.sources``); ``[]`` when the host has none (not Debian, or no apt)."""
    apt = root / "etc" / "apt"
    files = [apt / "sources.list"]
    d = apt / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    found: list[str] = []
    for p in files:
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found += _from_sources(text) if p.suffix == ".sources" else _from_list(text)
    return list(dict.fromkeys(u.rstrip("/") for u in found))
