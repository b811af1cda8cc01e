"""A context variable set for one ``with`` block: how the CLI lends its view (settings, types) to library code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def bound(var: ContextVar[T], value: T) -> Iterator[T]:
    """``var`` is ``value`` inside the block and what it was before after it, however the block ends."""
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)
