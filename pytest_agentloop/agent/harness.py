"""The harness config YAML, as the runners read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_agentloop.agent.errors import AgentConfigError

#: What ``tool_policy.artifact_ignore`` is when a seed is set and the field is absent: caches a coding run leaves.
SEED_IGNORE = ("__pycache__", "*.pyc", ".pytest_cache", ".git")


@dataclass(frozen=True)
class Harness:
    """A harness config: its file, its parsed data, its version and the dataroom its tools may read."""

    path: Path | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """The harness version (``version:``), ``unversioned`` when absent."""
        return str(self.data.get("version") or "unversioned")

    @property
    def policy(self) -> dict[str, Any]:
        """``tool_policy`` (empty when absent or not a mapping)."""
        policy = self.data.get("tool_policy")
        return policy if isinstance(policy, dict) else {}

    @property
    def dataroom(self) -> Path | None:
        """``tool_policy.readable_data_root`` resolved against the harness file's folder."""
        root = self.policy.get("readable_data_root")
        if not root or self.path is None:
            return None
        return (self.path.parent / str(root)).resolve()

    @property
    def seed_as_written(self) -> str | None:
        """``tool_policy.workdir_seed`` as the harness writes it (None: runs start in an empty folder)."""
        seed = self.policy.get("workdir_seed")
        return None if seed is None or self.path is None else str(seed)

    @property
    def workdir_seed(self) -> Path | None:
        """The folder whose files every run's working directory starts with, resolved against the harness's folder."""
        seed = self.seed_as_written
        return None if seed is None or self.path is None else (self.path.parent / seed).resolve()

    @property
    def artifact_ignore(self) -> tuple[str, ...]:
        """``tool_policy.artifact_ignore``; when absent, :data:`SEED_IGNORE` with a seed and nothing without."""
        given = self.policy.get("artifact_ignore")
        if given is not None:
            return tuple(str(pattern) for pattern in given)
        return SEED_IGNORE if self.workdir_seed is not None else ()

    @property
    def model(self) -> str | None:
        """``model_settings.model``."""
        settings = self.data.get("model_settings") or {}
        model = settings.get("model") if isinstance(settings, dict) else None
        return None if model is None else str(model)


def load_harness(path: Path | None) -> Harness:
    """Read the harness YAML at ``path`` (an empty harness when ``path`` is None)."""
    if path is None:
        return Harness(None, {})
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AgentConfigError("harness file not found (ini option agentloop_harness)", path=path) from None
    except yaml.YAMLError as exc:
        raise AgentConfigError(f"harness is not valid YAML: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise AgentConfigError("harness must be a YAML mapping", path=path)
    harness = Harness(path.resolve(), data)
    _check_workdir_policy(harness)
    return harness


def _check_workdir_policy(harness: Harness) -> None:
    """Refuse a seed or ignore list a run could not use, before any run starts."""
    policy, path = harness.policy, harness.path
    ignore = policy.get("artifact_ignore")
    if ignore is not None and not (isinstance(ignore, list) and all(isinstance(p, str) and p for p in ignore)):
        raise AgentConfigError(
            f"tool_policy.artifact_ignore: expected a list of glob patterns, got {ignore!r}", path=path
        )
    seed = policy.get("workdir_seed")
    if seed is None or path is None:
        return
    if not isinstance(seed, str) or not seed:
        raise AgentConfigError(f"tool_policy.workdir_seed: expected a folder path, got {seed!r}", path=path)
    folder = (path.parent / seed).resolve()
    if not folder.is_relative_to(path.parent):
        raise AgentConfigError(
            f"tool_policy.workdir_seed: {seed!r} resolves to {folder}, outside the harness file's folder {path.parent}",
            path=path,
        )
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise AgentConfigError(f"tool_policy.workdir_seed: {seed!r} {what} ({folder})", path=path)
