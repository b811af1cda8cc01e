"""Literal assertion families; importing this package registers them all."""

from __future__ import annotations

from pytest_agentloop.assertions import artifacts, text
from pytest_agentloop.assertions.registry import (
    AssertionType,
    CheckInput,
    Outcome,
    lookup,
    names,
)

__all__ = ["AssertionType", "CheckInput", "Outcome", "artifacts", "lookup", "names", "text"]
