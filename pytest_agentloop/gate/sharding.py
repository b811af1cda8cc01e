"""``--agentloop-shard=K/N``: keep this runner's share of the selected items, deselect the rest.

Registered as its own plugin object when the option is given. Evals that read
the same run (the same question, so one live run serves them) share a unit and
land on one shard; any other test is a unit of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.shards import Plan, ShardSpec, plan, read_durations, units


def group_key(item: pytest.Item) -> str:
    """What must run together with ``item``: its source run for evals, itself otherwise."""
    store = getattr(item, "store", None)
    spec = getattr(item, "spec", None)
    if store is not None and spec is not None:
        try:
            return f"{store.root}::{store.get(spec.trace).trace_id}"
        except AgentloopError:
            return item.nodeid  # the item reports its own missing run
    return item.nodeid


class ShardSelector:
    """Deselects the items planned for other shards, after every other selection (-k, -m, splits)."""

    name = "agentloop-shard"

    def __init__(self, spec: ShardSpec, durations_file: Path | None) -> None:
        self.spec = spec
        self.durations = read_durations(durations_file) if durations_file else {}
        self.plan: Plan | None = None
        self.selected: list[str] = []

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Plan over the selected items and keep this shard's."""
        groups = {item.nodeid: group_key(item) for item in items}
        self.plan = plan(units(groups, self.durations), self.spec.count)
        mine = [i for i in items if self.plan.shard_of[i.nodeid] == self.spec.index]
        others = [i for i in items if self.plan.shard_of[i.nodeid] != self.spec.index]
        if others:
            config.hook.pytest_deselected(items=others)
            items[:] = mine
        self.selected = [i.nodeid for i in mine]

    def pytest_report_collectionfinish(self, config: pytest.Config) -> str | None:
        """One header line: which shard, how many items, its planned share."""
        if self.plan is None:
            return None
        load = self.plan.loads[self.spec.index - 1]
        return (
            f"agentloop: shard {self.spec}: {len(self.selected)} items, planned {load:.1f}s "
            f"(slowest shard / ideal {self.plan.balance:.2f})"
        )
