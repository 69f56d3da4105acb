"""An image's users as runc reads them: ``User`` to numeric ids, and each user's home."""

from __future__ import annotations

from pathlib import Path

from torchslim.sandbox.errors import SandboxError


def _table(root: Path, name: str) -> list[list[str]]:
    try:
        text = (root / "etc" / name).read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line.count(":") >= 2]


def image_user(root: Path, user: str) -> tuple[int, int]:
    """An image config's ``User`` (``1000``, ``1000:1000``, ``app``, ``app:app``, empty) as
    numeric uid:gid, read from the root's /etc/passwd and /etc/group like runc does."""
    name, _, group = (user or "0").partition(":")
    passwd = {row[0]: row for row in _table(root, "passwd")}
    if name.isdigit():
        uid = int(name)
        row = next((r for r in passwd.values() if r[2] == name), None)
    elif name in passwd:
        row = passwd[name]
        uid = int(row[2])
    else:
        raise SandboxError(f"image user {name!r} is not in the image's /etc/passwd")
    if not group:
        return uid, int(row[3]) if row is not None and len(row) > 3 and row[3].isdigit() else uid
    if group.isdigit():
        return uid, int(group)
    gid = next((int(r[2]) for r in _table(root, "group") if r[0] == group), None)
    if gid is None:
        raise SandboxError(f"image group {group!r} is not in the image's /etc/group")
    return uid, gid


def home_of(root: Path, uid: int) -> str:
    """The user's home from the root's /etc/passwd, as runc sets HOME; ``/`` when absent."""
    row = next((r for r in _table(root, "passwd") if r[2] == str(uid) and len(r) >= 6), None)
    return (row[5] or "/") if row else "/"
