"""The root command's run: each planned task evaluated in turn with one model, its bundle reported,
published to the --wandb-*/--hf-* sinks and auto-exported; several tasks leave an invocation record.

An evaluation that fails stops the invocation (the finished tasks stay, and a rerun reuses them);
an export that fails does not: it is said, the other tasks go on, and the command exits 7 at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval_framework.cli.common import command_line, say_on_interrupt
from eval_framework.errors import ExportError

if TYPE_CHECKING:
    from eval_framework.eval_plan import EvalPlan
    from eval_framework.exporting import AutoExport
    from eval_framework.invocations import Invocation
    from eval_framework.runner import EvalOutcome, SharedModel
    from eval_framework.sinks.publish import PublishOptions


def run_invocation(
    plans: list[EvalPlan],
    sinks: PublishOptions,
    auto: AutoExport | None,
    after_task: Callable[[int, EvalOutcome], None] | None = None,
    cluster: dict[str, Any] | None = None,
) -> None:
    """``after_task(index, outcome)``: told of each evaluation once it is complete (e.g. to report
    its metrics to Determined), before its exports; ``cluster``: the Determined trial running them,
    recorded in each bundle's metadata."""
    from eval_framework.runner import SharedModel

    first = plans[0].config
    record = _record(plans, auto) if len(plans) > 1 else None
    failures: list[tuple[ExportError, bool]] = []  # each failed export, and whether it was said
    with SharedModel(plans[0].model, first.batch_size) as source:
        for index, plan in enumerate(plans):
            try:
                outcome, live = _evaluate(plan, source, sinks, cluster)
            except BaseException as exc:
                if record is not None:
                    record.stopped(index, exc)
                raise
            if record is not None:
                record.record.bundles[index].bundle = outcome.bundle_dir.name
                record.mark(index, "reused" if outcome.reused else "complete")
            if after_task is not None:
                after_task(index, outcome)
            more_follows = index + 1 < len(plans)
            for failure in _exports(outcome.bundle_dir, sinks, live, auto, more_follows):
                if record is not None:
                    record.export_failed(index, failure.problem())
                if more_follows:
                    _say(failure)  # said now: the next task goes on
                failures.append((failure, more_follows))
    if record is not None:
        _say_invocation(record)
    _raise_failures(failures)


def _raise_failures(failures: list[tuple[ExportError, bool]]) -> None:
    """One failed export is the command's error; several are each said, then counted."""
    if len(failures) == 1:
        raise failures[0][0]
    if failures:
        for failure, said in failures:
            if not said:
                _say(failure)
        raise ExportError(
            f"{len(failures)} exports failed (each is said above, with the command that finishes it); "
            "the evaluations themselves are complete"
        )


def _say(failure: ExportError) -> None:
    from eval_framework.reporting import stderr

    stderr.print(f"error: {failure}", markup=False, highlight=False)


def _record(plans: list[EvalPlan], auto: AutoExport | None) -> Invocation:
    from eval_framework.bundle_io import ensure_writable
    from eval_framework.invocations import Invocation, InvocationEntry

    entries = [InvocationEntry(task=p.task.name, bundle=p.bundle_name, natural_key=p.key) for p in plans]
    configs = dict(auto.configs) if auto is not None else {}
    ensure_writable(plans[0].config.output_dir)  # a file in its place is named as such, first
    invocation = Invocation(plans[0].config.output_dir, entries, command_line(), configs)
    invocation.save()  # written before the model loads: a stop at any point leaves it saying so
    return invocation


def _evaluate(
    plan: EvalPlan, source: SharedModel, sinks: PublishOptions, cluster: dict[str, Any] | None = None
) -> tuple[EvalOutcome, Any]:
    """The evaluation, reported; with the live W&B run that logged it, if any."""
    from eval_framework.reporting import progress_bar, stderr, stdout, summary_table
    from eval_framework.runner import evaluate_plan

    live = None
    if sinks.wandb is not None:
        from eval_framework.sinks.wandb_live import LiveRun
        from eval_framework.sinks.wandb_mode import say_once

        live = LiveRun(sinks.wandb)
        if live.note:
            say_once(live.note)
    with progress_bar(f"{plan.display} · {plan.task.name}") as update:
        outcome = evaluate_plan(plan, source, progress=update, hooks=live, cluster=cluster)
    if outcome.reused:
        stderr.print(f"[dim]Already evaluated; reusing {outcome.bundle_dir} (--overwrite recomputes).[/dim]")
    stdout.print(summary_table(outcome))
    stdout.print(f"Results: {outcome.bundle_dir}")
    from eval_framework import cleanup

    # before the exports: a Ctrl-C that Python dropped still means stop, and a preemption stops
    # here (the evaluation is complete; a resumed run reuses it and exports it then)
    cleanup.raise_if_stopped()
    return outcome, live


def _exports(
    bundle_dir: Path, sinks: PublishOptions, live: Any, auto: AutoExport | None, more_follows: bool
) -> list[ExportError]:
    """Publish the bundle to the --wandb-*/--hf-* sinks, then auto-export it; what failed."""
    from eval_framework.cli.evaluate import auto_export_bundle, publish_and_report
    from eval_framework.sinks.publish import upload_command

    failures: list[ExportError] = []
    if sinks.any:
        say_on_interrupt(
            f"the evaluation is complete in {bundle_dir}; finish the export with: "
            f"{upload_command([bundle_dir], sinks)}"
        )
        try:
            publish_and_report([bundle_dir], sinks, live)
        except ExportError as exc:
            if auto is not None and not more_follows:
                _say(exc)  # said now: the automatic export goes on
            failures.append(exc)
    if auto is not None:
        try:
            auto_export_bundle(bundle_dir, auto)
        except ExportError as exc:
            failures.append(exc)
    return failures


def _say_invocation(record: Invocation) -> None:
    from eval_framework.invocations import DEFAULT_OUTPUT_DIR
    from eval_framework.reporting import stdout

    bundles = record.record.bundles
    default = record.path.parent.parent.resolve() == DEFAULT_OUTPUT_DIR.resolve()
    handle = record.id if default else str(record.path)
    stdout.print(
        f"Invocation {record.id}: {len(bundles)} evaluations, recorded in {record.path}; export them "
        f"with: eval_framework export {handle} --dest <destination>"
    )
