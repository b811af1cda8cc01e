"""A quick yes for span lines and run records that certainly fit their format; the full check runs on the rest.

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

from pytest_agentloop.formats import RECORD_SCHEMA, SPAN_SCHEMA

Check = Callable[[object], bool]
# What each JSON type name is in Python: jsonschema counts neither True as an integer nor 1.0 as a non-integer,
# so an integer is an int that is not a bool (1.0 is left to the full check).
_TYPES: dict[str, str] = {
    "string": "isinstance({v}, str)",
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "boolean": "isinstance({v}, bool)",
    "null": "{v} is None",
    "integer": "type({v}) is int",
    "number": "type({v}) in (int, float)",
}
_IGNORED = {"description", "title"}


class _Unknown(Exception):
    """A keyword (or a form of one) this checker does not understand."""


def compile_schema(schema: dict[str, Any]) -> Check:
    """A function saying True only when its argument certainly satisfies ``schema``."""
    constants: dict[str, object] = {"isinstance": isinstance, "len": len, "dict": dict, "str": str, "list": list}
    constants |= {"type": type, "int": int, "float": float, "bool": bool, "all": all}
    try:
        expression = _expression(schema, "value", constants)
    except _Unknown:
        return lambda value: False  # always ask the full validator
    return cast(Check, eval(f"lambda value: {expression}", {"__builtins__": {}, **constants}))


def _expression(schema: dict[str, Any], var: str, constants: dict[str, object], depth: int = 0) -> str:
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
            if not all(name in _TYPES for name in names):
                raise _Unknown(key)
            parts.append("(" + " or ".join(_TYPES[name].format(v=var) for name in names) + ")")
        elif key == "required":
            present = [f"{name!r} in {var}" for name in rule]
            parts.append(f"(isinstance({var}, dict) and {' and '.join(present) or 'True'})")
        elif key == "properties":
            fields = [
                f"({name!r} not in {var} or {_expression(sub, f'{var}[{name!r}]', constants, depth)})"
                for name, sub in rule.items()
            ]
            parts.append(f"(not isinstance({var}, dict) or ({' and '.join(fields) or 'True'}))")
        elif key == "additionalProperties" and rule is False:
            allowed = constant(frozenset(schema.get("properties", {})))
            parts.append(f"(not isinstance({var}, dict) or {allowed}.issuperset({var}))")
        elif key == "additionalProperties" and isinstance(rule, dict):
            known, item = constant(frozenset(schema.get("properties", {}))), f"v{depth}"
            each = _expression(rule, item, constants, depth + 1)
            extra = f"{var}[k{depth}] for k{depth} in {var} if k{depth} not in {known}"
            parts.append(f"(not isinstance({var}, dict) or all({each} for {item} in ({extra})))")
        elif key == "items" and isinstance(rule, dict):
            item = f"v{depth}"
            each = _expression(rule, item, constants, depth + 1)
            parts.append(f"(not isinstance({var}, list) or all({each} for {item} in {var}))")
        elif key == "pattern":
            parts.append(f"(not isinstance({var}, str) or {constant(re.compile(rule))}.search({var}) is not None)")
        elif key == "enum" and all(isinstance(item, str) for item in rule):
            parts.append(f"(isinstance({var}, str) and {var} in {constant(frozenset(rule))})")
        elif key == "enum" and all(type(item) is int for item in rule):
            parts.append(f"(type({var}) is int and {var} in {constant(frozenset(rule))})")
        elif key == "minLength":
            parts.append(f"(not isinstance({var}, str) or len({var}) >= {int(rule)})")
        elif key == "minimum" and type(rule) in (int, float):
            parts.append(f"(type({var}) not in (int, float) or {var} >= {rule!r})")
        elif key == "oneOf":
            parts.append(_one_of(rule, var, constants, depth))
        else:
            raise _Unknown(key)
    return " and ".join(parts) or "True"


def _one_of(branches: list[dict[str, Any]], var: str, constants: dict[str, object], depth: int) -> str:
    """``oneOf`` whose branches each require one JSON type of their own: any branch holding is exactly one."""
    kinds = [branch.get("type") for branch in branches]
    if not all(isinstance(kind, str) and kind in _TYPES for kind in kinds) or len(set(kinds)) != len(kinds):
        raise _Unknown("oneOf")
    if {"integer", "number"} <= set(kinds):  # an int is both: two branches could hold
        raise _Unknown("oneOf")
    return "(" + " or ".join(_expression(branch, var, constants, depth) for branch in branches) + ")"


@cache
def span_fits() -> Check:
    """The quick check of one span line (see the module docstring)."""
    return compile_schema(SPAN_SCHEMA)


@cache
def record_fits() -> Check:
    """The quick check of one run record (``record.json``): collection then imports no jsonschema."""
    return compile_schema(RECORD_SCHEMA)
