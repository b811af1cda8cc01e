"""Safe YAML loading that remembers the line of every mapping and key.

Uses libyaml's C parser where present; only mapping construction runs in Python,
which keeps loading close to plain ``yaml.load`` speed.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pytest_agentloop.errors import AgentloopError

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
        if skey in data:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {skey!r} (first on line {data.key_lines[skey]})", key_node.start_mark
            )
        data[skey] = loader.construct_object(value_node, deep=True)
        data.key_lines[skey] = key_node.start_mark.line + 1


LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_line_map)


MAX_EXPANDED_VALUES = 5_000_000


def expanded_size(document: object, limit: int = MAX_EXPANDED_VALUES) -> int:
    """How many values ``document`` holds once YAML aliases are expanded (stops counting past ``limit``).

    A recursive alias counts as past the limit. Aliases share one object, so the count is made over distinct containers
    with a memo: linear in the document, however far its aliases would expand.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[object, bool]] = [(document, False)]
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, dict | list) or id(node) in sizes:
            continue
        if not children_done and id(node) in visiting:
            return limit + 1  # a recursive alias: the value would never end
        visiting.add(id(node))
        children = list(node.values()) if isinstance(node, dict) else node
        if children_done:
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes.get(id(c), 1) for c in children))
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, dict | list) and id(c) not in sizes)
    return sizes.get(id(document), 1)


def plain(value: Any) -> Any:
    """``value`` with line-tracking mappings (:class:`LineMap`) turned into plain dicts, to serialise it."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def load_yaml(text: str) -> Any:
    """Parse ``text`` with the safe line-tracking loader.

    The cyclic garbage collector is paused while parsing: a large file creates
    hundreds of thousands of acyclic objects, and the collector's passes over
    them cost more than the parse itself.
    """
    with paused_gc():
        return yaml.load(text, Loader=LineLoader)


def load_yaml_of(path: Path, text: str, what: str, error: type[AgentloopError] = AgentloopError) -> Any:
    """:func:`load_yaml`, with malformed YAML raised as ``error`` (``"{what}: {problem}"``) naming the file and line."""
    try:
        return load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error(f"{what}: {exc.problem or exc}", path=path, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise error(f"{what}: {exc}", path=path) from None


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
