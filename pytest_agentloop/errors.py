"""Exceptions for user errors: each names the file, line or eval and says what to do."""

from __future__ import annotations

from pathlib import Path


class AgentloopError(Exception):
    """A problem with the user's files or settings, reported without a traceback."""

    def __init__(self, message: str, *, path: Path | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line

    def __str__(self) -> str:
        return self.display()

    def display(self, root: Path | None = None) -> str:
        """The message prefixed with ``path:line``, the path relative to ``root`` when inside it."""
        if self.path is None:
            return self.message
        path = self.path
        if root is not None and path.is_relative_to(root):
            path = path.relative_to(root)
        where = f"{path}:{self.line}" if self.line else str(path)
        return f"{where}: {self.message}"


class SpecError(AgentloopError):
    """An eval file that cannot be loaded or does not follow the schema."""


class SpecErrors(SpecError):
    """Several errors of one eval file, reported together (each names its own line)."""

    def __init__(self, errors: list[SpecError]) -> None:
        first = errors[0]
        super().__init__(first.message, path=first.path, line=first.line)
        self.errors = errors

    def display(self, root: Path | None = None) -> str:
        """Every error, one per line, each prefixed with ``path:line``."""
        return "\n".join(error.display(root) for error in self.errors)


class TraceStoreError(AgentloopError):
    """A trace store, run record or artifact folder that is missing or malformed."""
