"""Running HALO (halo-engine's Python API) over the optimization context.

HALO reaches models through ``AsyncOpenAI(base_url, api_key)``. No temperature
is ever set, so model families that accept only their default still work. Its
optional code sandbox (Deno/Pyodide) is not needed for diagnosis: when it is
unavailable HALO prints a long warning, which is captured here and reported
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop.handoff.report import FAILURE_CLASSES, SECTIONS, SUBSECTIONS

SANDBOX_MARKER = "run_code disabled"


@dataclass(frozen=True)
class HaloSettings:
    """Models, endpoint and limits of one HALO run (the key is never shown)."""

    model: str
    subagent_model: str
    synthesis_model: str
    compaction_model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    depth: int = 1
    parallel_subagents: int = 2
    turns: int = 30
    timeout: float = 900.0


@dataclass
class HaloRun:
    """What a HALO run produced."""

    report: str | None = None
    steps: int = 0
    sandbox_unavailable: bool = False
    error: str | None = None


def build_prompt(holdout_note: str) -> str:
    """The request HALO's root agent answers."""
    sections = "\n".join(f"{i}. {name}" for i, name in enumerate(SECTIONS, 1))
    classes = "; ".join(FAILURE_CLASSES)
    return (
        "Diagnose this LLM agent's harness from the dataset: the agent's traces, reviewer feedback (HUMAN_FEEDBACK, "
        "which outranks model feedback), model insights (LLM_FEEDBACK), eval definitions (EVAL), per-eval gate "
        "results (EVAL_RESULT, error status when failed) and the harness config (HARNESS_CONFIG). Rank the next "
        "harness changes and write a handoff for a coding agent.\n\n"
        f"Write markdown with exactly these level-2 (##) sections, in this order:\n{sections}\n\n"
        "The ranked recommendation table has the columns rank, recommendation, impact, confidence, effort, "
        f"evidence, validation. In 'Supporting diagnosis and evidence', class each failure mode as one of: {classes}; "
        "give its evidence source and cite trace ids. 'Detailed recommendations' has these level-3 (###) "
        f"subsections in order: {', '.join(SUBSECTIONS)} (Prompt and Skills under Behavior contract; Tools, Control "
        "flow and Routing under Runtime implementation; Artifact schema under Output contract; Observability and "
        "Evals under Observability and evals). 'Machine-readable summary' is one ```json block with a "
        "top_priorities list.\n\n"
        f"{holdout_note}\nFinish by calling final_answer with the whole markdown report."
    )


def run_halo(
    context: Path, settings: HaloSettings, prompt: str, dataset_context: str, on_step: Callable[[int], None]
) -> HaloRun:
    """Run HALO in a thread of its own (its own event loop) within the time budget."""
    result = HaloRun()
    captured = io.StringIO()

    def target() -> None:
        try:
            asyncio.run(
                asyncio.wait_for(
                    _stream(context, settings, prompt, dataset_context, result, on_step), timeout=settings.timeout
                )
            )
        except TimeoutError:
            result.error = f"HALO did not finish within {settings.timeout:g}s (--agentloop-handoff-timeout)"
        except Exception as exc:
            result.error = f"HALO failed: {type(exc).__name__}: {exc}"

    sandbox_log = logging.getLogger("engine.sandbox.sandbox")
    previous = sandbox_log.level
    sandbox_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(captured):
            thread = threading.Thread(target=target, name="agentloop-halo", daemon=True)
            thread.start()
            thread.join(settings.timeout + 30)
    finally:
        sandbox_log.setLevel(previous)
    result.sandbox_unavailable = SANDBOX_MARKER in captured.getvalue()
    if thread.is_alive():
        result.error = f"HALO did not stop within {settings.timeout:g}s"
    if result.error is None and not result.report:
        result.error = "HALO ended without a final report"
    return result


async def _stream(
    context: Path,
    settings: HaloSettings,
    prompt: str,
    dataset_context: str,
    result: HaloRun,
    on_step: Callable[[int], None],
) -> None:
    from engine.main import stream_engine_async
    from engine.models.engine_output import AgentOutputItem
    from engine.models.messages import AgentMessage

    config = _engine_config(settings, dataset_context)
    messages = [AgentMessage(role="user", content=prompt)]
    async for event in stream_engine_async(messages, config, context):
        if isinstance(event, AgentOutputItem):
            result.steps += 1
            on_step(result.steps)
            if event.final:
                result.report = _text(event.item.content)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _engine_config(settings: HaloSettings, dataset_context: str) -> Any:
    from engine.agents.agent_config import AgentConfig
    from engine.engine_config import EngineConfig
    from engine.model_config import ModelConfig
    from engine.model_provider_config import ModelProviderConfig

    return EngineConfig(
        root_agent=AgentConfig(name="halo-root", model=ModelConfig(name=settings.model), maximum_turns=settings.turns),
        subagent=AgentConfig(
            name="halo-subagent", model=ModelConfig(name=settings.subagent_model), maximum_turns=settings.turns
        ),
        synthesis_model=ModelConfig(name=settings.synthesis_model),
        compaction_model=ModelConfig(name=settings.compaction_model),
        model_provider=ModelProviderConfig(base_url=settings.base_url, api_key=settings.api_key),
        maximum_depth=settings.depth,
        maximum_parallel_subagents=settings.parallel_subagents,
        dataset_context=dataset_context,
    )
