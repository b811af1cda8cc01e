"""Safe YAML loading that remembers the line of every mapping and key.

Uses libyaml's C parser where present; only mapping construction runs in Python,
which keeps loading close to plain ``yaml.load`` speed.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

_BaseLoader: type[yaml.SafeLoader]
try:
    _BaseLoader = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _BaseLoader = yaml.SafeLoader


class LineMap(dict[str, Any]):
    """A YAML mapping that knows its own line and the line of each key (1-based)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = 0
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        """Line of ``key`` if present, else the mapping's own line."""
        return self.key_lines.get(key, self.line)


class LineLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader producing :class:`LineMap` for mappings."""


def _construct_line_map(loader: LineLoader, node: yaml.MappingNode) -> Any:
    data = LineMap()
    data.line = node.start_mark.line + 1
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "mapping keys must be plain scalars", key_node.start_mark
            )
        skey = str(key)
        data[skey] = loader.construct_object(value_node, deep=True)
        data.key_lines[skey] = key_node.start_mark.line + 1


LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_line_map)


def load_yaml(text: str) -> Any:
    """Parse ``text`` with the safe line-tracking loader.

    The cyclic garbage collector is paused while parsing: a large file creates
    hundreds of thousands of acyclic objects, and the collector's passes over
    them cost more than the parse itself.
    """
    with paused_gc():
        return yaml.load(text, Loader=LineLoader)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector (reference counting still frees memory)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
