"""Human-readable output: progress bars and summary tables (rich, quiet when not a TTY)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.errors import LiveError
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from eval_framework.bundle_schema import MetricStats
from eval_framework.registry.progress import DownloadBar
from eval_framework.runner import EvalOutcome, ProgressFn


def _console(to_stderr: bool = False) -> Console:
    console = Console(stderr=to_stderr)
    # Piped output goes to logs and scripts: no wrapping of paths, tables at a readable width.
    return console if console.is_terminal else Console(stderr=to_stderr, width=160, soft_wrap=True)


stdout = _console()
stderr = _console(to_stderr=True)


def evaluation_progress() -> Progress:
    """The evaluation bar (description, bar, done/total, elapsed) on stderr; drawn only when
    stderr is a terminal, and gone once finished."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        disable=not stderr.is_terminal,
        transient=True,
    )


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressFn]:
    """A progress callback; draws a bar only when stderr is a terminal."""
    with evaluation_progress() as bar:
        task_id = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task_id, completed=done, total=total)

        yield update


class _RichDownloadBar:
    """Draws only once there is something to fetch: a complete, verified copy shows nothing."""

    def __init__(self, bar: Progress, description: str) -> None:
        self._bar, self._description = bar, description
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        if total <= 0 or self._task is not None:
            return
        self._task = self._bar.add_task(escape(self._description), total=total)
        try:
            self._bar.start()  # nested under the evaluation's bar when that one is drawing
        except LiveError:  # rich < 14 allows one live display per console: go without
            self._bar.disable = True

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, nbytes)

    def close(self) -> None:
        if self._task is not None:
            self._bar.stop()


@contextmanager
def download_bar(description: str, console: Console | None = None) -> Iterator[DownloadBar]:
    """A checkpoint download's bar (bytes, rate, time left) on stderr, only when it is a terminal.

    Install with ``registry.progress.set_download_bar_factory``. Transient, and removed however
    the download ends (success, error, SIGTERM's SystemExit), so the terminal line stays clean.
    """
    console = stderr if console is None else console
    bar = _RichDownloadBar(
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
            transient=True,
        ),
        description,
    )
    try:
        yield bar
    finally:
        bar.close()


def _fmt(value: float | str | None, pct: bool = True) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):  # a metric that is not a number is shown as it is
        return value
    return f"{100 * value:.1f}" if pct else f"{value:.4f}"


def summary_table(outcome: EvalOutcome) -> Table:
    task = outcome.metadata.task
    title = (
        f"{outcome.metadata.model.name} on {task.name} ({task.num_fewshot}-shot, {task.num_samples} samples)"
    )
    table = Table(title=title, title_justify="left")
    for column in ("subject", "metric", "value (%)", "± stderr", "n"):
        table.add_column(column, justify="left" if column in ("subject", "metric") else "right")
    metrics = outcome.results.metrics
    blocks: list[tuple[str, dict[str, MetricStats]]] = [("overall", metrics.overall)]
    blocks += list(metrics.subjects.items())
    for subject, block in blocks:
        for name, m in block.items():
            table.add_row(subject, name, _fmt(m.value), _fmt(m.stderr), str(m.n))
    return table
