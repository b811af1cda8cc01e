"""What every subcommand shares: finding eval files and verdict stores."""

from __future__ import annotations

from pathlib import Path

from pytest_agentloop.config import DEFAULT_EVAL_PATTERNS


def eval_files(paths: list[str]) -> list[Path]:
    """Eval files named by ``paths`` (files, or folders searched recursively; default: the current folder)."""
    found: set[Path] = set()
    for name in paths or ["."]:
        path = Path(name)
        if path.is_file():
            found.add(path)
        else:
            found.update(p for pattern in DEFAULT_EVAL_PATTERNS for p in path.rglob(pattern))
    return sorted(found)


def verdict_stores(paths: list[str], file_name: str) -> list[Path]:
    """The verdict files beside the eval files named by ``paths``."""
    return sorted({p.parent / file_name for p in eval_files(paths) if (p.parent / file_name).is_file()})
