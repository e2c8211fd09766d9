"""A Comparison as a rich table, a markdown table (for pull requests) or JSON.

Accuracy-type metrics (0/1 per sample) are shown in percent and their differences in percentage
points; other metrics as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from eval_framework.compare.build import Comparison, MetricComparison

if TYPE_CHECKING:
    from rich.console import RenderableType

COLUMNS = ("version", "metric", "mean", "± stderr", "n", "baseline", "Δ", "CI", "p", "test")


def is_percent(comparison: Comparison, task: str, metric: str) -> bool:
    """Shown in percent: every evaluation of it on ``task`` has 0/1 per-sample scores."""
    values = [
        e.metrics[metric] for (_, t), e in comparison.cells.items() if t == task and metric in e.metrics
    ]
    return bool(values) and all(v.binary for v in values)


def number(value: float | str | None, percent: bool, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    text = f"{100 * value:{'+' if signed else ''}.1f}" if percent else f"{value:{'+' if signed else ''}.4g}"
    return text


def p_text(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def rows(comparison: Comparison, task: str) -> Iterator[list[str]]:
    """One row per version and metric of ``task``: the cells of ``COLUMNS``."""
    for label in comparison.labels:
        evaluation = comparison.cell(label, task)
        if evaluation is None:
            continue
        for metric in comparison.metrics[task]:
            stats = evaluation.metrics.get(metric)
            if stats is None:
                continue
            pct = is_percent(comparison, task, metric)
            test = comparison.find(label, task, metric)
            yield [
                label,
                metric + ("" if stats.per_sample else " (means only)"),
                number(stats.mean, pct),
                number(stats.stderr, pct),
                str(stats.n),
                *_test_cells(test, pct),
            ]


def _test_cells(test: MetricComparison | None, pct: bool) -> list[str]:
    if test is None:
        return ["", "", "", "", ""]
    unit = " pp" if pct else ""
    result = test.result
    if result is None:
        diff = number(test.mean_difference, pct, signed=True)
        return [
            test.baseline,
            diff + (unit if test.mean_difference is not None else ""),
            "-",
            "-",
            test.note or "-",
        ]
    ci = f"[{number(result.ci_low, pct, signed=True)}, {number(result.ci_high, pct, signed=True)}]"
    kind = "McNemar" if result.test == "mcnemar_exact" else "bootstrap"
    shared = f"{kind}, n={result.n_shared}"
    if test.only_candidate or test.only_baseline:
        shared += f" (unshared: {test.only_candidate}+{test.only_baseline})"
    return [
        test.baseline,
        number(result.difference, pct, signed=True) + unit,
        ci,
        p_text(result.p_value),
        shared,
    ]


def title(comparison: Comparison, task: str) -> str:
    against = f"against {comparison.baseline}" if comparison.baseline else "each against its predecessor"
    count = len([v for v in comparison.labels if comparison.cell(v, task)])
    return f"{task}: {count} versions, {against} ({comparison.confidence:.0%} CI)"


def tables(comparison: Comparison) -> list[RenderableType]:
    """One rich table per task."""
    from rich.table import Table

    out: list[RenderableType] = []
    for task in comparison.tasks:
        table = Table(title=title(comparison, task), title_justify="left")
        for column in COLUMNS:
            table.add_column(
                column, justify="left" if column in ("version", "metric", "baseline", "test") else "right"
            )
        for row in rows(comparison, task):
            table.add_row(*row)
        out.append(table)
    return out


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(comparison: Comparison) -> str:
    """Markdown tables, one per task, ready to paste into a pull request."""
    lines: list[str] = []
    for task in comparison.tasks:
        lines += [f"**{_md_cell(title(comparison, task))}**", ""]
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append(
            "| "
            + " | ".join("---" if c in ("version", "metric", "baseline", "test") else "---:" for c in COLUMNS)
            + " |"
        )
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows(comparison, task)]
        lines.append("")
    lines += [f"> warning: {_md_cell(w)}" for w in comparison.warnings]
    lines += [f"> skipped {_md_cell(str(p))}: {_md_cell(why)}" for p, why in comparison.skipped]
    footnote = (
        "Δ: version minus baseline on the samples both evaluated (pp: percentage points). Accuracy: "
        "McNemar's exact test, Bonett-Price interval; other metrics: paired bootstrap"
        f" (seed {comparison.seed}, {comparison.resamples} resamples)."
    )
    return "\n".join([*lines, "", footnote]).strip() + "\n"


def as_json(comparison: Comparison) -> str:
    return json.dumps(comparison.as_dict(), indent=2)
