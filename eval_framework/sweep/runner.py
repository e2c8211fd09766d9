"""Evaluating a sweep: each version on every task, oldest first, one model load per version.

``evaluate_version`` is the step (a ``watch`` of new versions calls it for each one that lands);
``run_sweep`` runs it over a list. Each version's tasks are planned (identity, prompts, the
registry version's digest) before its model loads, and evaluations already finished are reused
without loading it, so a rerun after a kill goes on where the sweep stopped. A version that fails
(a broken checkpoint, a version deleted meanwhile) is recorded and the sweep goes on; a stop
(SIGTERM, Ctrl-C, a preemption) ends it, whatever finished kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from eval_framework import cleanup
from eval_framework.config import EvalConfig
from eval_framework.errors import ConfigError, EvalFrameworkError, ModelError, OutputError, RegistryError
from eval_framework.sweep.versions import Version

if TYPE_CHECKING:
    from eval_framework.runner import EvalOutcome

log = logging.getLogger(__name__)

#: Told (task name, samples done, samples in all) as a version's evaluations progress.
TaskProgressFn = Callable[[str, int, int], None]
#: Told of each evaluation once it is complete (e.g. to export it); its failures are its own.
AfterTaskFn = Callable[["EvalOutcome"], None]

TaskStatus = Literal["evaluated", "reused", "failed", "not run"]


@dataclass(frozen=True)
class TaskResult:
    task: str
    status: TaskStatus
    bundle_dir: Path | None = None
    #: the overall metrics (value only), for summaries; empty unless evaluated or reused
    scores: dict[str, float | str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionResult:
    """How one version's evaluations ended."""

    version: Version
    tasks: list[TaskResult]
    model_loaded: bool  #: False when every evaluation was reused (or it failed before loading)
    error: EvalFrameworkError | None = None  #: why the version failed (its first failure)

    @property
    def failed(self) -> bool:
        return self.error is not None


#: Failures that belong to one version (its checkpoint, its files, its lookup); any other one
#: (a bad option, an unknown task) is the same for every version and stops the sweep at once.
_PLAN_FAILURES = (RegistryError, ModelError, OutputError)


def version_configs(configs: Sequence[EvalConfig], version: Version) -> list[EvalConfig]:
    """The sweep's task configs pointed at ``version`` (its registry reference or directory)."""
    return [c.model_copy(update={"llm_args": {**c.llm_args, **version.llm_args()}}) for c in configs]


def evaluate_version(
    version: Version,
    configs: Sequence[EvalConfig],
    progress: TaskProgressFn | None = None,
    after_task: AfterTaskFn | None = None,
) -> VersionResult:
    """Evaluate (resume, or reuse) ``version`` on every task of ``configs`` with one model load.

    A failure of this version is returned, not raised: the first one stops its remaining tasks
    (they would share the broken model) and is kept in ``error``. A failure no version could
    escape (a bad option, an unknown task) and a stop are raised.
    """
    from eval_framework.runner import SharedModel, evaluate_plan, plan_all

    names = [c.task_name for c in configs]
    try:
        plans = plan_all(version_configs(configs, version))
    except _PLAN_FAILURES as exc:
        cleanup.raise_if_stopped()  # an error a stop caused on its way is the stop
        return VersionResult(version, [TaskResult(n, "not run") for n in names], False, exc)
    results: list[TaskResult] = []
    error: EvalFrameworkError | None = None
    with SharedModel(plans[0].model, plans[0].config.batch_size) as source:
        for plan in plans:
            name = plan.task.name
            if error is not None:
                results.append(TaskResult(name, "not run"))
                continue

            def told(done: int, total: int, task: str = name) -> None:
                if progress is not None:
                    progress(task, done, total)

            try:
                outcome = evaluate_plan(plan, source, progress=told)
            except EvalFrameworkError as exc:
                cleanup.raise_if_stopped()  # an error a stop caused on its way is the stop
                log.info("%s failed on %s: %s", version.label, name, exc)
                error = exc
                results.append(TaskResult(name, "failed"))
                continue
            scores = {k: m.value for k, m in outcome.results.metrics.overall.items()}
            status: TaskStatus = "reused" if outcome.reused else "evaluated"
            results.append(TaskResult(name, status, outcome.bundle_dir, scores))
            cleanup.raise_if_stopped()
            if after_task is not None:
                after_task(outcome)
        loaded = source.model is not None
    return VersionResult(version, results, loaded, error)


class SweepObserver(Protocol):
    """Told as the sweep goes (the command draws its progress display from this)."""

    def version_started(self, position: int, count: int, version: Version) -> None: ...

    def task_progress(self, task: str, done: int, total: int) -> None: ...

    def version_finished(self, result: VersionResult) -> None: ...


@dataclass(frozen=True)
class SweepSummary:
    results: list[VersionResult]

    @property
    def failed(self) -> list[VersionResult]:
        return [r for r in self.results if r.failed]

    def count(self, status: TaskStatus) -> int:
        return sum(1 for r in self.results for t in r.tasks if t.status == status)


def run_sweep(
    versions: Sequence[Version],
    configs: Sequence[EvalConfig],
    observer: SweepObserver | None = None,
    after_task: AfterTaskFn | None = None,
) -> SweepSummary:
    """Each version in turn (oldest first, as given) on every task; failures are collected."""
    if not configs:
        raise ConfigError("a sweep needs at least one task: pass --task-name")
    results: list[VersionResult] = []
    for position, version in enumerate(versions, start=1):
        cleanup.raise_if_stopped()
        if observer is not None:
            observer.version_started(position, len(versions), version)
        result = evaluate_version(version, configs, observer.task_progress if observer else None, after_task)
        results.append(result)
        if observer is not None:
            observer.version_finished(result)
    return SweepSummary(results)


class SweepFailed(EvalFrameworkError):
    """Some versions failed (each was said as it failed); the others are complete. The exit code is
    the first failure's, so a script can tell a broken checkpoint (3) from the registry (6)."""

    def __init__(self, summary: SweepSummary) -> None:
        first = summary.failed[0].error
        assert first is not None
        self.exit_code = first.exit_code
        which = ", ".join(r.version.label for r in summary.failed[:5]) + (
            " ..." if len(summary.failed) > 5 else ""
        )
        super().__init__(self.message(summary, first, which))

    @staticmethod
    def message(summary: SweepSummary, first: EvalFrameworkError, which: str) -> str:
        failed = summary.failed
        done = len(summary.results) - len(failed)
        if len(failed) == 1:
            why = f"{failed[0].version.label} failed: {first}"
        else:
            why = f"{len(failed)} versions failed ({which}; each is said above)"
        return (
            f"{why}; the {done} other version(s) are complete: fix the cause and rerun the same command "
            "(finished evaluations are reused)"
        )
