"""Redaction of captured runs: built-in patterns for API keys and e-mail addresses, plus a user hook.

Runs on span lines, answers, questions and artifact files before anything is
written, so a secret never reaches the store, a report, a shard file or HALO.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop.agent.errors import AgentConfigError
from pytest_agentloop.agent.runner import import_object

#: (name, pattern): what the built-in redaction replaces with ``[REDACTED:<name>]``.
BUILTIN_PATTERNS: tuple[tuple[str, str], ...] = (
    ("api-key", r"\bsk-[A-Za-z0-9_-]{16,}"),
    ("api-key", r"\b(?:ghp|gho|github_pat|xox[abp]|AKIA)[A-Za-z0-9_-]{12,}"),
    ("bearer", r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}=*"),
    ("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
)

BUILTIN_KINDS: tuple[str, ...] = ("api-key", "bearer", "email")
"""The built-in kinds, all on by default; ``agentloop_redact_builtin`` may leave e-mail out (a coding agent's
source files carry their authors' addresses, which are not customer data). Keys and tokens are always redacted."""
ALWAYS: frozenset[str] = frozenset({"api-key", "bearer"})

Hook = Callable[[str], str]


def parse_kinds(text: str) -> frozenset[str]:
    """The built-in kinds named in ``text`` (space or comma separated); keys and tokens cannot be left out."""
    names = frozenset(text.replace(",", " ").split())
    unknown = sorted(names - set(BUILTIN_KINDS))
    if unknown:
        raise AgentConfigError(
            f"agentloop_redact_builtin: unknown kind {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(BUILTIN_KINDS)}"
        )
    if not names >= ALWAYS:
        raise AgentConfigError(
            "agentloop_redact_builtin: API keys and bearer tokens are always redacted; name api-key and bearer "
            "(only email may be left out)"
        )
    return names


def load_hook(spec: str, root: Path | None = None) -> Hook:
    """The callable ``module:function`` (``str -> str``) named by agentloop_redact, found from ``root`` first."""
    hook = import_object(spec, root, "agentloop_redact")
    if not callable(hook):
        raise AgentConfigError(f"agentloop_redact {spec!r} is not callable")
    return hook  # type: ignore[no-any-return]


@dataclass
class Redactor:
    """Replaces secrets in text and in nested JSON values; counts what it replaced."""

    hook: Hook | None = None
    kinds: frozenset[str] = frozenset(BUILTIN_KINDS)
    """The built-in kinds that apply."""
    replaced: int = 0
    _patterns: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._patterns = [(name, re.compile(p)) for name, p in BUILTIN_PATTERNS if name in self.kinds]

    def text(self, value: str) -> str:
        """``value`` with every secret replaced."""
        for name, pattern in self._patterns:
            value, count = pattern.subn(f"[REDACTED:{name}]", value)
            self.replaced += count
        if self.hook is not None:
            value = str(self.hook(value))
        return value

    def value(self, data: Any) -> Any:
        """Strings anywhere inside ``data`` (dicts, lists) redacted."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {k: self.value(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.value(v) for v in data]
        return data

    def data(self, raw: bytes) -> bytes:
        """A file's bytes redacted when they are UTF-8 text; binary files pass unchanged."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
        return self.text(text).encode("utf-8")
