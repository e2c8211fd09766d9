"""Human-readable output: progress bars and summary tables (rich, quiet when not a TTY)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eval_framework.runner import EvalOutcome, ProgressFn


def _console(to_stderr: bool = False) -> Console:
    console = Console(stderr=to_stderr)
    # Piped output goes to logs and scripts: no wrapping of paths, tables at a readable width.
    return console if console.is_terminal else Console(stderr=to_stderr, width=160, soft_wrap=True)


stdout = _console()
stderr = _console(to_stderr=True)


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressFn]:
    """A progress callback; draws a bar only when stderr is a terminal."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        disable=not stderr.is_terminal,
        transient=True,
    ) as bar:
        task_id = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task_id, completed=done, total=total)

        yield update


def _fmt(value: float | None, pct: bool = True) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if pct else f"{value:.4f}"


def summary_table(outcome: EvalOutcome) -> Table:
    meta = outcome.metadata
    title = (
        f"{meta['model']['name']} on {meta['task']['name']} "
        f"({meta['task']['num_fewshot']}-shot, {meta['task']['num_samples']} samples)"
    )
    table = Table(title=title, title_justify="left")
    for column in ("subject", "metric", "value (%)", "± stderr", "n"):
        table.add_column(column, justify="left" if column in ("subject", "metric") else "right")
    metrics = outcome.results["metrics"]
    blocks: list[tuple[str, dict[str, Any]]] = [("overall", metrics["overall"])]
    blocks += list(metrics.get("subjects", {}).items())
    for subject, block in blocks:
        for name, m in block.items():
            table.add_row(subject, name, _fmt(m["value"]), _fmt(m["stderr"]), str(m["n"]))
    return table


def comparison_table(outcomes: Sequence[tuple[str, EvalOutcome]]) -> Table:
    """One row per model version: the overall metrics side by side."""
    table = Table(title="tiny-letters checkpoints compared", title_justify="left")
    table.add_column("version")
    metric_names = list(outcomes[0][1].results["metrics"]["overall"]) if outcomes else []
    for name in metric_names:
        table.add_column(f"{name} (%)", justify="right")
    table.add_column("n", justify="right")
    for label, outcome in outcomes:
        overall = outcome.results["metrics"]["overall"]
        cells = [f"{_fmt(overall[m]['value'])} ± {_fmt(overall[m]['stderr'])}" for m in metric_names]
        n = str(overall[metric_names[0]]["n"]) if metric_names else "0"
        table.add_row(label, *cells, n)
    return table
