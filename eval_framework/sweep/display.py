"""What a sweep shows: one progress line for the whole sweep on a terminal (``version 3/12 v7 ·
ARC``), one line per finished version when piped (CI logs), and the summary table at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import TaskID
from rich.table import Table

from eval_framework.sweep.runner import SweepSummary, VersionResult
from eval_framework.sweep.versions import Version


def _score(value: float | str | None) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{100 * value:.1f}"
    return "-" if value is None else str(value)


def _task_cell(result: VersionResult, index: int) -> str:
    task = result.tasks[index]
    if task.status in ("evaluated", "reused"):
        first = next(iter(task.scores.items()), None)
        shown = f"{first[0]} {_score(first[1])}" if first else "done"
        return shown + (" (reused)" if task.status == "reused" else "")
    return task.status


def version_line(result: VersionResult) -> str:
    """One line for a finished version: each task's first metric, or why the version failed."""
    cells = ", ".join(f"{t.task} {_task_cell(result, i)}" for i, t in enumerate(result.tasks))
    if result.error is not None:
        return f"{result.version.shown}: failed: {result.error} ({cells})"
    twin = same_files_as(result)
    if twin is not None:
        cells += (
            f"; the same files as {twin}, whose evaluations these are (one bundle for both: compare "
            "shows it once)"
        )
    return f"{result.version.shown}: {cells}"


def same_files_as(result: VersionResult) -> str | None:
    """Another checkpoint folder whose bundles this one reused: its files are identical (the
    evaluation's identity is the files' fingerprint, not the path), so its results are the same."""
    if not result.version.local:
        return None
    here = Path(result.version.reference).resolve()
    for task in result.tasks:
        if task.status != "reused" or task.bundle_dir is None:
            continue
        try:
            meta = json.loads((task.bundle_dir / "metadata.json").read_text(encoding="utf-8"))
            recorded = meta["config"]["llm_args"]["checkpoint"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(recorded, str) and Path(recorded).resolve() != here:
            return recorded
    return None


class SweepDisplay:
    """A ``SweepObserver`` that draws the sweep's progress on stderr."""

    def __init__(self) -> None:
        from eval_framework.reporting import evaluation_progress, stderr

        self.console = stderr
        self.position, self.count, self.version = 0, 0, ""
        self.bar = evaluation_progress()
        self.task_id: TaskID = self.bar.add_task("sweep", total=None)

    def version_started(self, position: int, count: int, version: Version) -> None:
        self.position, self.count, self.version = position, count, version.shown
        self.bar.update(self.task_id, description=self._prefix() + ": planning", completed=0, total=None)

    def task_progress(self, task: str, done: int, total: int) -> None:
        self.bar.update(
            self.task_id, description=f"{self._prefix()}: task {task}", completed=done, total=total
        )

    def version_finished(self, result: VersionResult) -> None:
        line = f"{self._prefix()}:{version_line(result).removeprefix(result.version.shown + ':')}"
        self.console.print(line, markup=False, highlight=False)

    def _prefix(self) -> str:
        return f"version {self.position}/{self.count} {self.version}"


@contextmanager
def sweep_display() -> Iterator[SweepDisplay]:
    display = SweepDisplay()
    with display.bar:
        yield display


def summary_table(summary: SweepSummary) -> Table:
    """Versions as rows, tasks as columns: each cell the task's first metric, or its status."""
    tasks = [t.task for t in summary.results[0].tasks] if summary.results else []
    table = Table(title="Sweep", title_justify="left")
    table.add_column("version")
    for task in tasks:
        table.add_column(task, justify="right")
    for result in summary.results:
        table.add_row(result.version.shown, *(_task_cell(result, i) for i in range(len(tasks))))
    return table


def summary_line(summary: SweepSummary) -> str:
    tasks = len(summary.results[0].tasks) if summary.results else 0
    parts = [
        f"{summary.count(s)} {s}" for s in ("evaluated", "reused", "failed", "not run") if summary.count(s)
    ]
    failed = f"; {len(summary.failed)} version(s) failed" if summary.failed else ""
    return (
        f"Sweep: {len(summary.results)} version(s) x {tasks} task(s): {', '.join(parts) or 'nothing'}{failed}"
    )
