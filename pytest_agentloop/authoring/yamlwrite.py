"""Readable YAML for eval files: block style, keys in the order given, multi-line text as ``|`` blocks.

Sequences are indented under their key (``evals:\\n  - id: ...``), the way the
bundled example is written, and eval items can be rendered at any indentation
so they can be appended to an existing list without touching the rest of the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

WIDTH = 110


class _Dumper(yaml.SafeDumper):
    """Block style, indented sequences, insertion order kept."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value.strip("\n"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value.rstrip() + "\n", style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


def _mapping(dumper: yaml.SafeDumper, value: Mapping[str, Any]) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", list(value.items()))


_Dumper.add_representer(str, _text)
_Dumper.add_representer(dict, _mapping)


def dump(data: Any) -> str:
    """``data`` as block-style YAML, mapping keys in insertion order."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=WIDTH, default_flow_style=False)


def items(evals: Sequence[Mapping[str, Any]], indent: int) -> str:
    """Eval mappings as list items whose dashes sit at column ``indent``."""
    text = dump(list(evals))
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def suite(header: Mapping[str, Any], evals: Sequence[Mapping[str, Any]], comment: Sequence[str] = ()) -> str:
    """A whole eval file: comment lines, the header keys, then ``evals:``."""
    lines = "".join(f"# {line}\n" for line in comment)
    head = dump(dict(header)) if header else ""
    return f"{lines}{head}\nevals:\n{items(evals, 2)}"
