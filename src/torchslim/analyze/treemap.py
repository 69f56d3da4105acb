"""Squarified treemap layout (Bruls, Huizing, van Wijk 2000) for the HTML report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float


def _worst(row: list[float], side: float) -> float:
    s = sum(row)
    if s <= 0 or side <= 0:
        return float("inf")
    return max(max(side * side * r / (s * s), (s * s) / (side * side * r)) for r in row)


def squarify(values: list[float], box: Rect) -> list[Rect]:
    """Rectangles for ``values`` (sorted largest first by the caller) filling ``box``."""
    total = sum(values)
    if total <= 0 or not values:
        return [Rect(box.x, box.y, 0, 0) for _ in values]
    scale = box.w * box.h / total
    areas = [v * scale for v in values]
    out: list[Rect] = []
    x, y, w, h = box.x, box.y, box.w, box.h
    i = 0
    while i < len(areas):
        side = min(w, h)
        row = [areas[i]]
        j = i + 1
        while j < len(areas) and _worst(row + [areas[j]], side) <= _worst(row, side):
            row.append(areas[j])
            j += 1
        s = sum(row)
        if w >= h:  # lay the row out as a column on the left
            cw = s / h if h else 0
            cy = y
            for a in row:
                rh = a / cw if cw else 0
                out.append(Rect(x, cy, cw, rh))
                cy += rh
            x, w = x + cw, w - cw
        else:  # as a row on top
            rh = s / w if w else 0
            cx = x
            for a in row:
                cw = a / rh if rh else 0
                out.append(Rect(cx, y, cw, rh))
                cx += cw
            y, h = y + rh, h - rh
        i = j
    return out
