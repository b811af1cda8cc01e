"""Cutting long outputs into readable excerpts around a position."""

from __future__ import annotations

DEFAULT_WIDTH = 60


def around(text: str, start: int, end: int | None = None, width: int = DEFAULT_WIDTH) -> str:
    """``text[start:end]`` with ``width`` characters of context, newlines shown as ⏎."""
    end = start if end is None else end
    lo, hi = max(0, start - width), min(len(text), end + width)
    body = text[lo:hi].replace("\n", "⏎")
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")


def head(text: str, limit: int = 2 * DEFAULT_WIDTH) -> str:
    """The start of ``text``, cut at ``limit`` characters with the total length noted."""
    flat = text.replace("\n", "⏎")
    if len(flat) <= limit:
        return flat
    return f"{flat[:limit]}… ({len(text):,} chars in all)"


def closest_miss(text: str, needle: str) -> tuple[int, int] | None:
    """Offset and length of the longest prefix of ``needle`` found in ``text``.

    Binary search on the prefix length keeps this linear-ish on outputs of
    several megabytes, where a full fuzzy alignment would not finish.
    """
    lo, hi, best = 1, len(needle), None
    while lo <= hi:
        mid = (lo + hi) // 2
        pos = text.find(needle[:mid])
        if pos >= 0:
            best, lo = (pos, mid), mid + 1
        else:
            hi = mid - 1
    return best
