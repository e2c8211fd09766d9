"""What ``watch`` shows: one line per event, the progress bar only on a terminal."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from eval_framework.errors import EvalFrameworkError
from eval_framework.sweep.claims import Holder
from eval_framework.sweep.display import SweepDisplay, version_line
from eval_framework.sweep.runner import SweepSummary, VersionResult
from eval_framework.sweep.versions import Version
from eval_framework.sweep.watch import busy


class WatchDisplay(SweepDisplay):
    """One line per event on stderr (also when piped); the progress bar only on a terminal."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)

    def found(self, new: Sequence[Version], pending: int, first: bool) -> None:
        if first:
            self.say(
                f"watching {self.source}: {len(new)} version(s), {pending} to look at (finished evaluations "
                "are reused, not redone)"
            )
            return
        for version in new:
            self.say(f"new version {version.shown}")

    def version_started(self, position: int, count: int, version: Version) -> None:
        self.version = version.shown
        self.say(f"{version.shown}: evaluating")
        self.bar.update(self.task_id, description=f"{version.shown}: planning", completed=0, total=None)

    def task_progress(self, task: str, done: int, total: int) -> None:
        self.bar.update(self.task_id, description=f"{self.version}: {task}", completed=done, total=total)

    def version_finished(self, result: VersionResult) -> None:
        if busy(result.error):
            self.say(f"{result.version.shown}: skipped for now: {result.error}")
            return
        self.say(version_line(result))

    def claimed_elsewhere(self, version: Version, holder: Holder) -> None:
        self.say(f"{version.shown}: skipped: claimed by {holder.shown}")

    def took_over(self, version: Version, holder: Holder) -> None:
        silent = f"no heartbeat for {holder.age_s:.0f} s"
        self.say(f"{version.shown}: took over the claim of {holder.shown}: {silent}, its watcher is gone")

    def gave_up(self, version: Version, attempts: int, record: Path) -> None:
        self.say(f"{version.shown}: failed {attempts} times; not retried (delete {record} to retry it)")

    def poll_failed(self, error: EvalFrameworkError, wait_s: float) -> None:
        at = datetime.fromtimestamp(time.time() + wait_s).strftime("%H:%M:%S")
        self.say(f"warning: poll failed: {error}; retrying in {wait_s:.0f} s (at {at})")

    def recovered(self, failed_polls: int) -> None:
        self.say(f"polling {self.source} works again (after {failed_polls} failed poll(s))")

    def waiting(self, next_poll: float) -> None:
        at = datetime.fromtimestamp(next_poll).strftime("%H:%M:%S")
        self.bar.update(self.task_id, description=f"waiting for new versions (next poll {at})",
                        completed=0, total=None)  # fmt: skip


@contextmanager
def watch_display(source: str) -> Iterator[WatchDisplay]:
    display = WatchDisplay(source)
    with display.bar:
        yield display


def summary_line(summary: SweepSummary) -> str:
    parts = [
        f"{summary.count(s)} {s}" for s in ("evaluated", "reused", "failed", "not run") if summary.count(s)
    ]
    failed = f"; {len(summary.failed)} version(s) failed" if summary.failed else ""
    tasks = len(summary.results[0].tasks) if summary.results else 0
    done = ", ".join(parts) or "nothing evaluated"
    return f"Watch: {len(summary.results)} version(s) x {tasks} task(s): {done}{failed}"
