"""A quick yes for span lines that certainly fit their format, so the full JSON Schema check runs on the rest only.

:func:`pytest_agentloop.formats.check` costs about half a millisecond a line
(jsonschema), which on a store of a million span lines is minutes. The
checker compiled here from the same schema understands the handful of
keywords the span format uses and answers True only when the schema
certainly holds; anything else (a keyword it does not know, a value it is
unsure of) answers False, and the caller runs the full check, which gives the
one error message users see. So it never accepts a line the full check would
refuse. The schema is compiled once into one Python expression: it runs on
every span line of a store, and a call per keyword would cost as much as
parsing the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any, cast

from pytest_agentloop.formats import SPAN_SCHEMA

Check = Callable[[object], bool]
_CLASSES: dict[str, type] = {"string": str, "object": dict, "array": list, "boolean": bool, "null": type(None)}
_IGNORED = {"description", "title"}


class _Unknown(Exception):
    """A keyword (or a form of one) this checker does not understand."""


def compile_schema(schema: dict[str, Any]) -> Check:
    """A function saying True only when its argument certainly satisfies ``schema``."""
    constants: dict[str, object] = {"isinstance": isinstance, "len": len, "dict": dict, "str": str}
    try:
        expression = _expression(schema, "value", constants)
    except _Unknown:
        return lambda value: False  # always ask the full validator
    return cast(Check, eval(f"lambda value: {expression}", {"__builtins__": {}, **constants}))


def _expression(schema: dict[str, Any], var: str, constants: dict[str, object]) -> str:
    """A Python boolean expression over ``var`` that holds only if ``var`` satisfies ``schema``."""

    def constant(value: object) -> str:
        name = f"c{len(constants)}"
        constants[name] = value
        return name

    parts = []
    for key, rule in schema.items():
        if key in _IGNORED:
            continue
        if key == "type":
            names = rule if isinstance(rule, list) else [rule]
            if not all(name in _CLASSES for name in names):
                raise _Unknown(key)  # integer/number: bool would pass as an int
            parts.append(f"isinstance({var}, {constant(tuple(_CLASSES[n] for n in names))})")
        elif key == "required":
            present = [f"{name!r} in {var}" for name in rule]
            parts.append(f"(isinstance({var}, dict) and {' and '.join(present) or 'True'})")
        elif key == "properties":
            fields = [
                f"({name!r} not in {var} or {_expression(sub, f'{var}[{name!r}]', constants)})"
                for name, sub in rule.items()
            ]
            parts.append(f"(not isinstance({var}, dict) or ({' and '.join(fields) or 'True'}))")
        elif key == "additionalProperties" and rule is False:
            allowed = constant(frozenset(schema.get("properties", {})))
            parts.append(f"(not isinstance({var}, dict) or {allowed}.issuperset({var}))")
        elif key == "pattern":
            parts.append(f"(not isinstance({var}, str) or {constant(re.compile(rule))}.search({var}) is not None)")
        elif key == "enum" and all(isinstance(item, str) for item in rule):
            parts.append(f"(isinstance({var}, str) and {var} in {constant(frozenset(rule))})")
        elif key == "minLength":
            parts.append(f"(not isinstance({var}, str) or len({var}) >= {int(rule)})")
        else:
            raise _Unknown(key)
    return " and ".join(parts) or "True"


@cache
def span_fits() -> Check:
    """The quick check of one span line (see the module docstring)."""
    return compile_schema(SPAN_SCHEMA)
