"""Errors of the agent package, and the import of optional extras with a clear message."""

from __future__ import annotations

import importlib
from types import ModuleType

from pytest_agentloop.errors import AgentloopError


class AgentConfigError(AgentloopError):
    """The agent option, the harness or a questions file cannot be used as written."""


class MissingExtra(AgentConfigError):
    """An optional dependency (the Agents SDK, HALO) is not installed."""


class RunFailed(AgentloopError):
    """An agent run raised, timed out or hit its turn limit; its record says why."""


class BudgetExhausted(AgentloopError):
    """A live run was not started: it could pass the session's budget."""


EXTRAS = {"agents": "agents", "engine": "halo"}


def require(module: str) -> ModuleType:
    """Import ``module`` (``agents``, ``engine.…``), or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".")[0], "all")
        raise MissingExtra(
            f"{module} is not installed ({exc}); install the extra: pip install 'pytest-agentloop[{extra}]'"
        ) from None
