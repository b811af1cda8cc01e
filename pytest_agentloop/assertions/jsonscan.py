"""Finding and checking JSON values in text in linear time, with bounded nesting and self-contained schemas.

``contains-json`` reads candidates left to right. At each ``{`` or ``[`` not
already inside a value it has read, it asks the C JSON decoder for one value.
A value read is checked, with every object and array nested in it. A failed
read that got to offset ``f`` skips to ``f``: the text up to ``f`` is a valid
JSON prefix, so the only complete values inside it are the containers that
closed before ``f``, and those are found with one scan of the prefix. Each
character is thus decoded about twice, whatever the text.

JSON Schemas may only refer inside themselves (``$ref: "#/$defs/x"``): they
are validated with a ``referencing`` registry that has no retriever, so no
file is read and no network request made.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections import deque
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from pytest_agentloop.assertions.limits import CheckAborted

MAX_DEPTH = 100
MAX_SCHEMA_CHECKS = 200_000
WINDOW = 64
EDGE = 16  # longer than any JSON literal, so a literal cut by the window's edge is read as the edge
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
# An object opens with a key or closes at once; an array opens with a value or closes: prose brackets
# like "[note]" or "{this}" are never handed to the decoder.
_OPENERS = re.compile(r'\{\s*["}]|\[\s*(?:[\[{"\-0-9\]]|true|false|null)')
_CLOSERS = re.compile(r"[\]}]")
_DECODER = json.JSONDecoder()
_SCAN: Any = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]


class SchemaRefError(ValueError):
    """A ``$ref`` that points outside its schema document."""


# -- schemas ------------------------------------------------------------------


def _refs(node: object) -> Iterator[str]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                    yield value
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def check_schema(schema: object) -> None:
    """Raise ValueError unless ``schema`` is a valid, self-contained JSON Schema (draft 2020-12)."""
    import jsonschema

    if not isinstance(schema, dict):
        raise ValueError("expected a JSON Schema object (or no value)")
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise SchemaRefError(
                f"$ref {ref!r} points outside this schema; only references inside it (like '#/$defs/name') "
                "are allowed, and no file or URL is ever read"
            )
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"invalid JSON Schema: {exc.message}") from None
    if depth(schema) > MAX_DEPTH:
        raise ValueError(f"the schema is nested deeper than {MAX_DEPTH} levels")


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    import jsonschema
    from referencing import Registry

    return jsonschema.Draft202012Validator(json.loads(schema_json), registry=Registry())


_CONTAINER_TYPES: dict[str, type] = {"object": dict, "array": list}


class Schema:
    """A checked schema's validator, built once per check (no retriever: nothing outside the schema is read)."""

    def __init__(self, schema: object) -> None:
        self.validator = _validator(json.dumps(schema, sort_keys=True))
        kind = schema.get("type") if isinstance(schema, dict) else None
        self.container_type = kind if kind in _CONTAINER_TYPES else None

    def _cannot_fit(self, document: object) -> bool:
        """A quick no for the common case: a schema for an object, a candidate that is a list (or the reverse)."""
        return self.container_type is not None and not isinstance(document, _CONTAINER_TYPES[self.container_type])

    def _guard(self, document: object) -> None:
        if depth(document) > MAX_DEPTH:
            raise CheckAborted(f"JSON value nested deeper than {MAX_DEPTH} levels; it is not checked against a schema")

    def fits(self, document: object) -> bool:
        """Whether ``document`` fits (the fast path: no error message is built)."""
        from referencing.exceptions import Unresolvable

        if self._cannot_fit(document):
            return False
        self._guard(document)
        try:
            return bool(self.validator.is_valid(document))
        except Unresolvable as exc:
            raise CheckAborted(f"the schema's reference {exc} cannot be resolved inside the schema") from None

    def problem(self, document: object) -> str | None:
        """Why ``document`` does not fit, or None when it does."""
        import jsonschema
        from referencing.exceptions import Unresolvable

        self._guard(document)
        try:
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(document))
        except Unresolvable as exc:
            raise CheckAborted(f"the schema's reference {exc} cannot be resolved inside the schema") from None
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"schema violation at {where}: {error.message}"


def schema_problem(schema: object, document: object) -> str | None:
    """Why ``document`` does not fit ``schema`` (None when it does, or when there is no schema)."""
    return None if schema is None else Schema(schema).problem(document)


# -- values -------------------------------------------------------------------


def depth(document: object) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), computed without recursion."""
    deepest, stack = 0, [(document, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            stack.extend((child, level) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def containers(document: object) -> Iterator[object]:
    """``document`` and every object or array nested in it, outermost first."""
    queue = deque([document])
    while queue:
        item = queue.popleft()
        if isinstance(item, dict | list):
            yield item
            queue.extend(item.values() if isinstance(item, dict) else item)


def loads(text: str) -> object:
    """``json.loads`` with nesting beyond the parser's reach reported as :class:`CheckAborted`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise CheckAborted("JSON nested too deeply for the parser; it cannot be checked") from None


def _decode_at(text: str, start: int) -> tuple[object, int] | int:
    """The value at ``start`` and its end, or the offset where decoding failed.

    The decoder reads a window that doubles while a failure could be the
    window's edge (an unterminated string, a cut literal or number): a
    JSONDecodeError counts the lines before its position, so decoding the
    whole text from every candidate would cost quadratic time in failures.
    """
    width = WINDOW
    while True:
        window = text[start : start + width]
        try:
            document, end = _SCAN(window, 0)
            return document, start + end
        except StopIteration as exc:  # "expecting a value" at exc.value, raised by the C scanner at any depth
            position, at_edge = int(exc.value), int(exc.value) >= len(window) - EDGE
        except json.JSONDecodeError as exc:
            position = exc.pos
            at_edge = exc.pos >= len(window) - EDGE or exc.msg.startswith("Unterminated string")
        except RecursionError:
            raise CheckAborted(f"JSON at offset {start} is nested too deeply for the parser") from None
        if not at_edge or start + width >= len(text):
            return start + max(position, 1)
        width *= 2


def _closed_inside(text: str, start: int, stop: int) -> Iterator[tuple[int, int]]:
    """Outermost containers that open after ``start`` and close before ``stop``, in a valid JSON prefix."""
    opened: list[list[tuple[int, int]]] = []
    for token in _TOKEN.finditer(text, start, stop):
        char = token.group()
        if char in "[{":
            opened.append([(token.start(), -1)])
        elif char in "]}" and len(opened) > 1:
            begin = opened.pop()[0][0]
            opened[-1].append((begin, token.end()))
    yield from sorted(span for level in opened for span in level[1:])


def values(text: str) -> Iterator[tuple[int, object]]:
    """Every JSON object or array in ``text`` with its offset, in linear time (see the module docstring)."""
    position = 0
    while (opener := _OPENERS.search(text, position)) is not None:
        start = opener.start()
        found = _decode_at(text, start)
        if isinstance(found, tuple):
            yield start, found[0]
            position = found[1]
            continue
        if _CLOSERS.search(text, start + 1, found):
            for begin, end in _closed_inside(text, start, found):
                yield begin, json.loads(text[begin:end])
        position = found
