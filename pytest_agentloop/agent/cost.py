"""Token usage as money: a price table for known models, overridable in ini (``agentloop_prices``)."""

from __future__ import annotations

from pytest_agentloop.agent.errors import AgentConfigError

#: USD per million tokens (input, output), public list prices; override or extend with agentloop_prices.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-5.1": (1.25, 10.0),
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.4),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "o4-mini": (1.1, 4.4),
    "o3": (2.0, 8.0),
}


def parse_prices(lines: list[str]) -> dict[str, tuple[float, float]]:
    """The built-in table updated by ini lines ``MODEL INPUT_USD_PER_1M OUTPUT_USD_PER_1M``."""
    table = dict(PRICES)
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        try:
            model, price_in, price_out = parts
            table[model] = (float(price_in), float(price_out))
        except ValueError:
            raise AgentConfigError(
                f"agentloop_prices line {line!r}: write 'MODEL INPUT_USD_PER_1M OUTPUT_USD_PER_1M'"
            ) from None
    return table


def cost_of(
    model: str | None, input_tokens: int, output_tokens: int, table: dict[str, tuple[float, float]] | None = None
) -> float | None:
    """USD for the tokens, or None for a model the table does not know."""
    prices = (table or PRICES).get(model or "")
    if prices is None and model:
        # dated snapshots (gpt-4.1-mini-2025-04-14) cost what their family costs
        family = max((m for m in (table or PRICES) if model.startswith(m + "-")), key=len, default=None)
        prices = None if family is None else (table or PRICES)[family]
    if prices is None:
        return None
    return round((input_tokens * prices[0] + output_tokens * prices[1]) / 1_000_000, 8)
