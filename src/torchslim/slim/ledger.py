"""The slimming ledger: for every rule, which files it removed (or stripped) and how many bytes,
and every change that was undone (reverted) with the reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torchslim.slim.rules import why_of

EXAMPLES = 5


@dataclass
class _Entry:
    why: str
    files: int = 0
    bytes: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Revert:
    """A change of ``rule`` to ``path`` that was undone or refused; ``bytes`` stay in the image."""

    rule: str
    path: str
    bytes: int
    reason: str


@dataclass
class Ledger:
    """Bytes removed per rule. Paths are image paths (``/usr/local/lib/...``)."""

    _entries: dict[str, _Entry] = field(default_factory=dict)
    _reverts: list[Revert] = field(default_factory=list)

    def add(self, rule_id: str, path: str, nbytes: int) -> None:
        """Record that ``rule_id`` removed ``nbytes`` at ``path`` (bytes saved, for strip)."""
        entry = self._entries.get(rule_id)
        if entry is None:
            entry = self._entries[rule_id] = _Entry(why=why_of(rule_id))
        entry.files += 1
        entry.bytes += nbytes
        if len(entry.examples) < EXAMPLES:
            entry.examples.append(path)

    def revert(
        self, rule_id: str, path: str, nbytes: int, reason: str, *, applied: bool = True
    ) -> None:
        """Record that ``rule_id``'s change to ``path`` was undone: ``nbytes`` stay in the image.

        ``applied``: the change had been booked with ``add`` (a file restored after the
        proof failed), so its file and bytes come off the rule's total. ``applied=False``:
        the change was refused before it was made (a stripped copy that failed the load
        checks); the totals are unchanged and only the revert is listed.
        """
        why_of(rule_id)  # unknown ids are a programming error, as in ``add``
        if applied and (entry := self._entries.get(rule_id)) is not None:
            entry.files = max(0, entry.files - 1)
            entry.bytes = max(0, entry.bytes - nbytes)
            if path in entry.examples:
                entry.examples.remove(path)
            if entry.files == 0:
                del self._entries[rule_id]
        self._reverts.append(Revert(rule_id, path, nbytes, reason))

    def reverts(self) -> list[Revert]:
        """Every undone or refused change, in the order they were recorded."""
        return list(self._reverts)

    def merge(self, other: Ledger) -> None:
        """Add another ledger's counts (e.g. one per layer) into this one."""
        for rid, e in other._entries.items():
            mine = self._entries.setdefault(rid, _Entry(why=e.why))
            mine.files += e.files
            mine.bytes += e.bytes
            mine.examples = (mine.examples + e.examples)[:EXAMPLES]
        self._reverts.extend(other._reverts)

    def by_rule(self) -> list[tuple[str, str, int, int]]:
        """(rule id, why, files, bytes) per rule, largest first; ties by id for stable output."""
        rows = [(rid, e.why, e.files, e.bytes) for rid, e in self._entries.items()]
        return sorted(rows, key=lambda r: (-r[3], r[0]))

    def total(self) -> int:
        """All bytes removed."""
        return sum(e.bytes for e in self._entries.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"rules": [{id, why, files, bytes, examples}], "total": n}``, plus
        ``"reverted": [{rule, path, bytes, reason}]`` when a change was undone."""
        rules = [
            {
                "id": rid,
                "why": why,
                "files": files,
                "bytes": nbytes,
                "examples": list(self._entries[rid].examples),
            }
            for rid, why, files, nbytes in self.by_rule()
        ]
        out: dict[str, Any] = {"rules": rules, "total": self.total()}
        if self._reverts:
            out["reverted"] = [asdict(r) for r in self._reverts]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ledger:
        """Inverse of ``to_dict`` (keeps ids and whys even of rules this version lacks)."""
        ledger = cls()
        for row in data.get("rules", []):
            ledger._entries[str(row["id"])] = _Entry(
                why=str(row["why"]),
                files=int(row["files"]),
                bytes=int(row["bytes"]),
                examples=[str(p) for p in row.get("examples", [])][:EXAMPLES],
            )
        for row in data.get("reverted", []):
            ledger._reverts.append(
                Revert(str(row["rule"]), str(row["path"]), int(row["bytes"]), str(row["reason"]))
            )
        return ledger
