"""The pass rate per run and split, drawn as inline SVG (no script, no external anything)."""

from __future__ import annotations

from html import escape

from pytest_agentloop.report.model import RunPoint

WIDTH, HEIGHT, PAD = 560, 150, 40
SPLIT_CLASSES = {"optimization": "s-opt", "holdout": "s-hold"}


def _x(index: int, count: int) -> float:
    return PAD + (WIDTH - 2 * PAD) * (index / max(count - 1, 1))


def _y(rate: float) -> float:
    return HEIGHT - PAD - (HEIGHT - 2 * PAD) * rate


def pass_rate_svg(runs: tuple[RunPoint, ...]) -> str:
    """A line per split of the pass rate (passed / evals run) over the runs, oldest left; '' without runs."""
    if not runs:
        return ""
    splits = sorted({s for run in runs for s in run.splits})
    parts = [
        f'<svg class="trend" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="pass rate per run and split, {len(runs)} runs">',
        *_grid(),
    ]
    for split in splits:
        parts += _series(runs, split)
    parts += _legend(splits)
    parts.append("</svg>")
    return "".join(parts)


def _grid() -> list[str]:
    lines = []
    for rate in (0.0, 0.5, 1.0):
        y = _y(rate)
        lines.append(f'<line class="grid" x1="{PAD}" x2="{WIDTH - PAD}" y1="{y:.1f}" y2="{y:.1f}"/>')
        lines.append(f'<text class="axis" x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{rate:.0%}</text>')
    return lines


def _series(runs: tuple[RunPoint, ...], split: str) -> list[str]:
    css = SPLIT_CLASSES.get(split, "s-other")
    points, dots = [], []
    for index, run in enumerate(runs):
        if split not in run.splits:
            continue
        passed, total = run.splits[split]
        rate = passed / total if total else 0.0
        x, y = _x(index, len(runs)), _y(rate)
        points.append(f"{x:.1f},{y:.1f}")
        label = escape(f"{run.run_id} ({run.started[:16]}) {split}: {passed}/{total} passed ({rate:.0%})")
        dots.append(f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="3.5"><title>{label}</title></circle>')
    return [f'<polyline class="{css}" fill="none" points="{" ".join(points)}"/>', *dots]


def _legend(splits: list[str]) -> list[str]:
    items = []
    for index, split in enumerate(splits):
        css = SPLIT_CLASSES.get(split, "s-other")
        x = PAD + index * 130
        items.append(f'<circle class="{css}" cx="{x}" cy="12" r="4"/>')
        items.append(f'<text class="axis" x="{x + 8}" y="16">{escape(split)}</text>')
    return items
