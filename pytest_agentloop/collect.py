"""Collecting eval files: EvalFile yields one EvalItem per eval definition."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.config import Settings, settings_of
from pytest_agentloop.errors import AgentloopError, SpecError, TraceStoreError
from pytest_agentloop.evaluate import evaluate_literals, needs_artifacts
from pytest_agentloop.failures import EvalFailed, format_failure
from pytest_agentloop.results import LiteralVerdict
from pytest_agentloop.spec import EvalSpec, SuiteSpec, load_suite
from pytest_agentloop.traces.store import StoreCache, TraceRecord, TraceStore, find_store_root

STORES_KEY = pytest.StashKey[StoreCache]()
RUBRIC_PENDING = "rubric not yet evaluated: the LLM judge is not available in this version"


def stores_of(config: pytest.Config) -> StoreCache:
    """The per-process cache of opened trace stores."""
    return config.stash.setdefault(STORES_KEY, StoreCache())


def store_for(config: pytest.Config, suite_path: Path, explicit: Path | None, settings: Settings) -> TraceStore:
    """The trace store an eval file or test module reads."""
    root = explicit or find_store_root(suite_path.parent, settings.traces_dirname, config.rootpath)
    if root is None:
        raise TraceStoreError(
            f"no trace store found: no {settings.traces_dirname}/runs/ beside this file or above it "
            "(set `traces:` in the eval file or the ini option agentloop_traces)",
            path=suite_path,
        )
    return stores_of(config).open(root)


class EvalFile(pytest.File):
    """A YAML file of eval definitions."""

    def collect(self) -> Iterator[EvalItem]:
        """Load and validate the file, then yield its evals in file order."""
        settings = settings_of(self.config)
        try:
            suite = load_suite(self.path, settings.max_eval_file_bytes)
            store = store_for(self.config, self.path, suite.traces_dir, settings)
            _check_traces(suite, store)
        except AgentloopError as exc:
            raise self.CollectError(exc.display(self.config.rootpath)) from None
        for spec in suite.evals:
            _register_markers(self.config, spec.tags)
            item = EvalItem.from_parent(self, name=spec.id, spec=spec, suite=suite, store=store)
            for tag in spec.tags:
                item.add_marker(tag)
            item.add_marker("agentloop")
            yield item


def _check_traces(suite: SuiteSpec, store: TraceStore) -> None:
    for spec in suite.evals:
        if spec.trace not in store:
            known = ", ".join(r.label for r in store) or "none"
            raise SpecError(
                f"eval {spec.id!r}, field 'trace': no recorded run {spec.trace!r} in {store.root} (known: {known})",
                path=suite.path,
                line=spec.line_of("trace"),
            )


MARKERS_KEY = pytest.StashKey[set[str]]()


def _register_markers(config: pytest.Config, tags: tuple[str, ...]) -> None:
    """Declare tags as markers so --strict-markers accepts them."""
    if MARKERS_KEY not in config.stash:
        config.stash[MARKERS_KEY] = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    known = config.stash[MARKERS_KEY]
    for tag in tags:
        if tag not in known:
            config.addinivalue_line("markers", f"{tag}: agentloop eval tag")
            known.add(tag)


class EvalItem(pytest.Item):
    """One eval definition checked against its source trace's recorded run."""

    def __init__(self, *, spec: EvalSpec, suite: SuiteSpec, store: TraceStore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec, self.suite, self.store = spec, suite, store
        self.record: TraceRecord | None = None
        self.verdict: LiteralVerdict | None = None
        self._describe()

    def _describe(self) -> None:
        spec = self.spec
        self.user_properties.extend(
            [
                ("eval_id", spec.id),
                ("title", spec.title),
                ("tags", ",".join(spec.tags)),
                ("split", spec.split.value),
                ("scoring", spec.scoring.value),
                ("must_pass", str(spec.must_pass).lower()),
            ]
        )

    def setup(self) -> None:
        """Load the recorded run; a missing answer or artifact folder is an error."""
        try:
            self.record = self.store.get(self.spec.trace)
            _ = self.record.answer
            if needs_artifacts(self.spec):
                self.record.require_artifacts()
        except AgentloopError as exc:
            pytest.fail(f"eval {self.spec.id}: {exc.display(self.config.rootpath)}", pytrace=False)
        self.user_properties.extend([("trace_id", self.record.trace_id), ("trace_label", self.record.label)])

    def runtest(self) -> None:
        """Run the literal assertions, then report the rubric part."""
        assert self.record is not None
        record, spec = self.record, self.spec
        artifacts = record.artifacts_dir if record.artifacts_dir.is_dir() else None
        self.verdict = evaluate_literals(spec, record.answer, artifacts, self.suite.dataroom_dir)
        self.user_properties.append(("literal_score", f"{self.verdict.score:.4f}"))
        if not self.verdict.passed:
            raise EvalFailed(
                eval_id=spec.id,
                title=spec.title,
                trace=f"{record.label} ({record.trace_id})",
                path=self._display_path(),
                verdict=self.verdict,
                output=record.answer,
            )
        if spec.scoring.needs_judge:
            pytest.skip(RUBRIC_PENDING)

    def _display_path(self) -> Path:
        try:
            return self.path.relative_to(self.config.rootpath)
        except ValueError:
            return self.path

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        """Eval failures as a structured report; anything else as pytest would."""
        if isinstance(excinfo.value, EvalFailed):
            return format_failure(excinfo.value, verbose=self.config.get_verbosity() > 1)
        if isinstance(excinfo.value, AgentloopError):
            return f"eval {self.spec.id}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        """The YAML file, the eval's line, and its id."""
        return self.path, self.spec.line - 1, f"eval: {self.spec.id}"
