"""Running HALO (halo-engine's Python API) over the optimization context.

HALO reaches models through ``AsyncOpenAI(base_url, api_key)``; with a rate
(``--agentloop-rate``) the base URL is a local pacing relay in front of the
endpoint (:mod:`pytest_agentloop.relay`), so HALO spends the endpoint's one
budget with the judge. No temperature
is ever set, so model families that accept only their default still work. Its
optional code sandbox (Deno/Pyodide) is not needed for diagnosis: when it is
unavailable HALO prints a long warning, which is captured here and reported
once.

halo-engine is the ``[halo]`` extra: nothing here imports it until a diagnosis
is asked for, and :func:`missing_extra` says, in one line, how to install it.

HALO's agent runner retries most 400s up to ten times with backoff (a minute
and more). A request the endpoint refuses with a 4xx other than 408, 409 or
429 (a context larger than the model's window, an unknown model, a bad key)
fails the same way every time, so the run is stopped at the first one:
:class:`FailFast` watches the failures HALO reports on its logger and cancels
the run, and the handoff falls back to the evidence at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop.handoff.report import FAILURE_CLASSES, SECTIONS, SUBSECTIONS
from pytest_agentloop.judge.endpoint import DEFAULT_BASE_URL
from pytest_agentloop.ratelimit import RateBudget

SANDBOX_MARKER = "run_code disabled"
INSTALL_HALO = "pip install 'pytest-agentloop[halo]' (uv: uv add 'pytest-agentloop[halo]')"
RETRYABLE_4XX = frozenset({408, 409, 429})
_RUNNER_LOG = "engine.agents.openai_agent_runner"
_FAILED = re.compile(r"llm call failed .* \(status=(\d+) code=([^)]*)\)")
_BODY = re.compile(r"llm status-error body for agent_id=[^:]*: (.*)", re.DOTALL)


def missing_extra() -> str | None:
    """Why HALO cannot run here (the ``[halo]`` extra is not installed), or None when it can."""
    missing = [name for name in ("engine", "agents") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        "HALO is not installed (the [halo] extra of pytest-agentloop); install it with "
        f"{INSTALL_HALO}; README: In your own project"
    )


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
    budget: RateBudget | None = field(default=None, repr=False, compare=False)
    """The endpoint's rate budget (``--agentloop-rate``): HALO's calls then go through the pacing relay."""


@dataclass
class HaloRun:
    """What a HALO run produced."""

    report: str | None = None
    steps: int = 0
    sandbox_unavailable: bool = False
    error: str | None = None


class FailFast(logging.Handler):
    """Stop a HALO run at the first request the endpoint refuses for good (a 4xx but 408/409/429).

    HALO logs each failed model call on its runner's logger (status and error
    code), then the error body, then sleeps before retrying; the run's task is
    cancelled from here, so it ends during that sleep.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.status: int | None = None
        self.code = ""
        self.body = ""
        self._cancel: Callable[[], object] | None = None

    def arm(self, cancel: Callable[[], object]) -> None:
        """Call ``cancel`` (thread-safe) when a terminal refusal is seen."""
        self._cancel = cancel

    def emit(self, record: logging.LogRecord) -> None:
        """Read HALO's failure lines; cancel on a terminal 4xx."""
        message = record.getMessage()
        failed = _FAILED.search(message)
        if failed and self.status is None:
            status = int(failed.group(1)) if failed.group(1).isdigit() else 0
            if 400 <= status < 500 and status not in RETRYABLE_4XX:
                self.status, self.code = status, failed.group(2)
                if self._cancel is not None:
                    self._cancel()
        body = _BODY.match(message)
        if body and self.status is not None and not self.body:
            self.body = body.group(1)[:300]

    def reason(self) -> str:
        """The one line the handoff shows."""
        detail = _error_message(self.body) or (self.code if self.code not in ("", "None") else "")
        what = "a request larger than the model's context window" if _is_context_error(detail) else "the request"
        return (
            f"HALO stopped at the first refusal: the endpoint answered {self.status} to {what}"
            + (f" ({detail})" if detail else "")
            + "; a 4xx other than 408/409/429 is not retried"
        )


def _error_message(body: str) -> str:
    match = re.search(r"'message': ['\"](.*?)['\"](?:,|\})", body)
    return (match.group(1) if match else body).strip()[:200]


def _is_context_error(detail: str) -> bool:
    lowered = detail.lower()
    return "context" in lowered and any(word in lowered for word in ("exceed", "length", "size", "too long"))


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
    guard = FailFast()

    async def guarded() -> None:
        task = asyncio.ensure_future(_stream(context, settings, prompt, dataset_context, result, on_step))
        loop = asyncio.get_running_loop()
        guard.arm(lambda: loop.call_soon_threadsafe(task.cancel))
        try:
            await asyncio.wait_for(task, timeout=settings.timeout)
        except asyncio.CancelledError:
            if guard.status is None:
                raise
            result.error = guard.reason()
        except TimeoutError:  # said now: shutting HALO's loop down may wait on its worker threads
            result.error = f"HALO did not finish within {settings.timeout:g}s (--agentloop-handoff-timeout)"

    def target() -> None:
        try:
            asyncio.run(guarded())
        except Exception as exc:
            result.error = guard.reason() if guard.status is not None else f"HALO failed: {type(exc).__name__}: {exc}"

    with _quiet_sandbox(), _watching(guard), contextlib.redirect_stderr(captured):
        thread = threading.Thread(target=target, name="agentloop-halo", daemon=True)
        thread.start()
        thread.join(settings.timeout + 30)
    result.sandbox_unavailable = SANDBOX_MARKER in captured.getvalue()
    if thread.is_alive() and result.error is None:
        result.error = (
            f"HALO did not finish within {settings.timeout:g}s (--agentloop-handoff-timeout) "
            "and was still busy 30s later; it was abandoned"
        )
    if result.error is None and not result.report:
        result.error = "HALO ended without a final report"
    return result


@contextlib.contextmanager
def _quiet_sandbox() -> Any:
    """HALO's sandbox warning is long; it is read from stderr and reported once."""
    sandbox_log = logging.getLogger("engine.sandbox.sandbox")
    previous = sandbox_log.level
    sandbox_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        sandbox_log.setLevel(previous)


@contextlib.contextmanager
def _watching(guard: FailFast) -> Any:
    """Attach ``guard`` to HALO's runner logger (DEBUG, for the error body) and detach it after."""
    runner_log = logging.getLogger(_RUNNER_LOG)
    previous = runner_log.level
    runner_log.setLevel(logging.DEBUG)
    runner_log.addHandler(guard)
    try:
        yield
    finally:
        runner_log.removeHandler(guard)
        runner_log.setLevel(previous)


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

    messages = [AgentMessage(role="user", content=prompt)]
    async with _paced_base_url(settings) as base_url:
        config = _engine_config(settings, dataset_context, base_url)
        async for event in stream_engine_async(messages, config, context):
            if isinstance(event, AgentOutputItem):
                result.steps += 1
                on_step(result.steps)
                if event.final:
                    result.report = _text(event.item.content)


@contextlib.asynccontextmanager
async def _paced_base_url(settings: HaloSettings) -> AsyncIterator[str | None]:
    """The base URL HALO is given: the endpoint's, or with a rate budget the pacing relay's in front of it.

    HALO's ModelProviderConfig takes base_url, api_key and default_headers only (no HTTP client or hooks),
    so the base URL is the supported way to put its calls under the endpoint's one budget.
    """
    if settings.budget is None:
        yield settings.base_url
        return
    from pytest_agentloop.relay import pacing_relay

    async with pacing_relay(settings.base_url or DEFAULT_BASE_URL, settings.budget, settings.timeout) as url:
        yield url


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _engine_config(settings: HaloSettings, dataset_context: str, base_url: str | None) -> Any:
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
        model_provider=ModelProviderConfig(base_url=base_url, api_key=settings.api_key),
        maximum_depth=settings.depth,
        maximum_parallel_subagents=settings.parallel_subagents,
        dataset_context=dataset_context,
    )
