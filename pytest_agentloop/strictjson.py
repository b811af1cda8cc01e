"""JSON read strictly: an object that repeats a key is an error, never last-wins."""

from __future__ import annotations

import json
from typing import Any


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that refuses a repeated key (ValueError naming it)."""
    data: dict[str, Any] = dict(pairs)  # in C; the loop below runs only to name a repeated key
    if len(data) == len(pairs):
        return data
    data = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"key {key!r} appears twice")
        data[key] = value
    return data


def loads(text: str) -> Any:
    """``json.loads`` with repeated keys refused (json.JSONDecodeError or ValueError)."""
    return json.loads(text, object_pairs_hook=no_duplicate_keys)
