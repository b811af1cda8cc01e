"""``--agentloop-shard=K/N``: keep this runner's share of the selected items, deselect the rest.

Registered as its own plugin object when the option is given. Evals that read
the same run (the same question, so one live run serves them) share a unit and
land on one shard; any other test is a unit of its own.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.fileio import write_atomic
from pytest_agentloop.gate.carry import Carried, live_files, new_verdicts, read_input, relative
from pytest_agentloop.gate.merge import ShardFile, outcome_settings, shard_document
from pytest_agentloop.gate.shards import Plan, ShardSpec, plan, read_durations, units
from pytest_agentloop.results import EvalResult

WORKER_KEY = "agentloop_shard"


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

    def __init__(self, spec: ShardSpec, durations_file: Path | None, out: Path | None = None) -> None:
        self.spec = spec
        self.durations = read_durations(durations_file) if durations_file else {}
        self.out = out
        self.plan: Plan | None = None
        self.selected: list[str] = []
        self.planned: set[str] = set()
        self.error: str | None = None

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
        self.planned = set(groups)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """On an xdist worker, hand the planned selection to the controller (which collects nothing).

        Elsewhere (after the session wrote the results): a shard file that could not be written fails the run.
        """
        if hasattr(session.config, "workerinput"):
            session.config.workeroutput[WORKER_KEY] = sorted(self.planned)  # type: ignore[attr-defined]
        elif self.error is not None:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def merge_worker(self, node: Any) -> None:
        """Take a finished worker's planned selection (called on the controller)."""
        self.planned.update(getattr(node, "workeroutput", {}).get(WORKER_KEY, []))

    def pytest_agentloop_results(self, config: pytest.Config, results: list[EvalResult]) -> None:
        """With ``--agentloop-shard-out``, write this shard's file for ``agentloop merge``."""
        if self.out is None:
            return
        try:
            document = shard_document(self.shard_file(config, results))
        except AgentloopError as exc:
            self.error = exc.display(config.rootpath)
            return
        target = self.out if self.out.is_absolute() else config.rootpath / self.out
        write_atomic(target, document)

    def shard_file(self, config: pytest.Config, results: list[EvalResult]) -> ShardFile:
        """This shard's contribution: its results and everything the merge job's checkout lacks."""
        from pytest_agentloop.config import settings_of

        assert self.out is not None
        session = config.pluginmanager.get_plugin("agentloop-session")
        reported: dict[str, str] = dict(getattr(session, "reported", {}))
        started = str(getattr(session, "started", ""))
        return ShardFile(
            path=self.out,
            shard=self.spec,
            commit=_commit(config.rootpath),
            settings=outcome_settings(settings_of(config)),
            planned=tuple(sorted(self.planned)),
            ran=tuple(sorted(reported)),
            results=tuple(results),
            outcomes=reported,
            outside=tuple(session.outside_failures()) if session is not None else (),
            started=started,
            carried=carried(config, set(getattr(session, "written", ())), started, results),
        )

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Say why the shard file was not written (the run fails)."""
        if self.error is not None:
            terminalreporter.write_line(f"agentloop: shard file {self.out} not written: {self.error}", red=True)

    def pytest_report_collectionfinish(self, config: pytest.Config) -> str | None:
        """One header line: which shard, how many items, its planned share."""
        if self.plan is None:
            return None
        load = self.plan.loads[self.spec.index - 1]
        return (
            f"agentloop: shard {self.spec}: {len(self.selected)} items, planned {load:.1f}s "
            f"(slowest shard / ideal {self.plan.balance:.2f})"
        )


class XdistShardHooks:
    """Registered on the controller only when pytest-xdist is present."""

    def __init__(self, selector: ShardSelector) -> None:
        self.selector = selector

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Merge a finished worker's planned selection."""
        self.selector.merge_worker(node)


def carried(config: pytest.Config, written: set[Path], started: str, results: list[EvalResult]) -> Carried:
    """Verdicts made, live traces, harness and feedback files, harness version and options of this session."""
    from pytest_agentloop.config import settings_of
    from pytest_agentloop.gate.finish import harness_version

    settings, root = settings_of(config), config.rootpath
    live = config.pluginmanager.get_plugin("agentloop-live")
    folder: Path | None = getattr(live, "folder", None)
    harness = root / settings.harness if settings.harness else None
    evals = {(r.nodeid.split("::")[0].rsplit("/", 1)[-1], r.eval_id) for r in results}
    return Carried(
        harness_version=harness_version(settings, root),
        options={k: str(v) for k, v in vars(settings).items() if k not in ("feedback", "given")},
        harness=None if harness is None else read_input(harness, _shown(harness, root)),
        feedback=tuple(read_input(Path(p), _shown(Path(p), root)) for p in settings.feedback),
        verdicts=new_verdicts(written, started, evals, root) if started else {},
        live_dir=None if folder is None else relative(folder, root),
        live=() if folder is None else live_files(folder / "traces"),
    )


def _shown(path: Path, root: Path) -> str:
    """A carried input's name: relative to the rootdir, or its file name when it lies outside."""
    path = path if path.is_absolute() else Path.cwd() / path
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def _commit(root: Path) -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
