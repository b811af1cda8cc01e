"""From a pytest session to a handoff on disk: paths, run id, HALO settings, the evidence."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from pytest_agentloop.config import Settings
from pytest_agentloop.handoff.context import Evidence
from pytest_agentloop.handoff.evidence import gather
from pytest_agentloop.handoff.halo import HaloSettings, missing_extra
from pytest_agentloop.handoff.produce import HandoffOutcome, Say, produce
from pytest_agentloop.handoff.report import RunInfo
from pytest_agentloop.judge.endpoint import DEFAULT_BASE_URL
from pytest_agentloop.ratelimit import endpoint_budget
from pytest_agentloop.results import EvalResult


def halo_settings(settings: Settings, rate_dir: Path | None = None) -> HaloSettings | None:
    """HALO's models and endpoint, defaulting to the judge's (and its rate budget, kept in ``rate_dir``); None
    without a key."""
    key = settings.judge_key()
    if key is None:
        return None
    model = settings.halo_model or settings.judge_model
    return HaloSettings(
        model=model,
        subagent_model=settings.halo_subagent_model or model,
        synthesis_model=settings.halo_synthesis_model or model,
        compaction_model=settings.halo_compaction_model or model,
        base_url=settings.judge_base_url,
        api_key=key,
        depth=settings.halo_depth,
        parallel_subagents=settings.halo_parallel,
        turns=settings.halo_turns,
        timeout=settings.handoff_timeout,
        budget=endpoint_budget(
            settings.judge_base_url or DEFAULT_BASE_URL, settings.judge_key_env, settings.rate, rate_dir
        ),
    )


def halo_or_reason(settings: Settings, rate_dir: Path | None = None) -> tuple[HaloSettings | None, str]:
    """HALO's settings, or None and the one line saying why there is no diagnosis (no key, no [halo] extra)."""
    halo = halo_settings(settings, rate_dir)
    if halo is None:
        return None, f"no model endpoint is configured (${settings.judge_key_env} is not set)"
    missing = missing_extra()
    if missing is not None:
        return None, missing
    return halo, ""


def live_stores(config: pytest.Config) -> list[Path]:
    """The store ``--agentloop-live`` wrote this session's fresh runs into, if it ran."""
    from pytest_agentloop.agent.live import LiveRuns

    live = config.pluginmanager.get_plugin(LiveRuns.name)
    return [live.pool.store] if isinstance(live, LiveRuns) else []


def write_handoff(
    config: pytest.Config, settings: Settings, results: list[EvalResult], say: Say, run_id: str
) -> HandoffOutcome:
    """Gather the evidence of this session and produce its handoff."""
    root = config.rootpath
    artifacts = root / settings.artifacts_dir
    target = Path(settings.handoff) if settings.handoff else artifacts / "handoff.md"
    target = target if target.is_absolute() else Path.cwd() / target
    harness = root / settings.harness if settings.harness else None
    feedback = [Path(p) for p in settings.feedback]
    evidence = gather(results, root, settings.traces_dirname, harness, feedback, extra_stores=live_stores(config))
    command = shlex.join(["pytest", *config.invocation_params.args])
    run = RunInfo(run_id=run_id, harness_version=evidence.harness_version, command=command)
    halo, why = halo_or_reason(settings, settings.rate_dir(root))
    return _noted(produce(evidence, run, target, artifacts / "runs" / run_id, halo, say, why), why)


def rerun_handoff(run_dir: Path, settings: Settings, target: Path | None, say: Say) -> HandoffOutcome:
    """Run HALO again over a saved run's context, without rerunning the tests."""
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    results = [EvalResult.from_json(r) for r in json.loads((run_dir / "results.json").read_text(encoding="utf-8"))]
    evidence = Evidence(
        results=tuple(results),
        specs={},
        records=(),
        feedback=tuple(meta.get("feedback") or ()),
        harness=meta.get("harness"),
        harness_version=str(meta.get("harness_version") or ""),
    )
    run = RunInfo(run_id=str(meta["run_id"]), harness_version=evidence.harness_version, command=str(meta["command"]))
    halo, why = halo_or_reason(settings, run_dir.parent.parent / "rate")  # <artifacts>/runs/<id> → <artifacts>/rate
    target = target or run_dir / "handoff.md"
    return _noted(produce(evidence, run, target, run_dir, halo, say, why, context_file=run_dir / "context.jsonl"), why)


def _noted(outcome: HandoffOutcome, why: str) -> HandoffOutcome:
    """A missing [halo] extra is said in the terminal too, not only at the top of the handoff."""
    if why.startswith("HALO is not installed"):
        outcome.notes.append(why)
    return outcome
