"""The harness config YAML, as the runners read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_agentloop.agent.errors import AgentConfigError


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
    def dataroom(self) -> Path | None:
        """``tool_policy.readable_data_root`` resolved against the harness file's folder."""
        policy = self.data.get("tool_policy") or {}
        root = policy.get("readable_data_root") if isinstance(policy, dict) else None
        if not root or self.path is None:
            return None
        return (self.path.parent / str(root)).resolve()

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
    return Harness(path.resolve(), data)
