"""The root command as a Determined trial (``--context determined``): the trial's hyperparameters
over the command line, then the invocation inside Determined's Core API context, its metrics
reported per task, only the chief process evaluating and writing."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eval_framework.determined_trial import Trial
    from eval_framework.eval_plan import EvalPlan
    from eval_framework.exporting import AutoExport
    from eval_framework.runner import EvalOutcome
    from eval_framework.sinks.publish import PublishOptions

log = logging.getLogger(__name__)

#: Where a trial run off a cluster keeps Determined checkpoints, inside its --output-dir.
LOCAL_CHECKPOINTS = ".determined-checkpoints"


@dataclasses.dataclass(frozen=True)
class TrialRun:
    trial: Trial
    description: str | None
    experiment_name: str | None


def apply_trial(
    hparams_file: Path | None,
    file_values: dict[str, Any],
    flags: dict[str, Any],
    sink_flags: dict[str, Any],
    auto: AutoExport | None,
) -> tuple[TrialRun, dict[str, Any], dict[str, Any], dict[str, Any], AutoExport | None]:
    """The trial, and the command's layers with its hyperparameters over them (a hyperparameter
    that is set wins, false and 0 included: see determined_hparams). Checked before anything runs."""
    from eval_framework.determined_hparams import (
        evaluation_inputs,
        layers,
        load_hparams,
        merged_auto_export,
        merged_over,
    )
    from eval_framework.determined_trial import current_trial

    trial = current_trial(hparams_file)
    given = layers(load_hparams(trial.hparams))
    files, merged = evaluation_inputs(file_values, flags, given.evaluation)
    merged["context"] = "determined"
    run = TrialRun(trial, given.description, given.experiment_name)
    return (
        run,
        files,
        merged,
        merged_over(sink_flags, given.sinks),
        merged_auto_export(auto, given.auto_export),
    )


def run_trial(
    run: TrialRun, plans: list[EvalPlan], sinks: PublishOptions, auto: AutoExport | None, context: Any = None
) -> None:
    """The invocation inside the trial's Core API context (``context``: one already entered; by
    default ``core.init()``'s): continued from the trial's latest checkpoint, stopped between
    batches when Determined preempts it, its partial bundles then saved as a checkpoint."""
    from eval_framework.determined_trial import core_context

    if context is None:
        with core_context(run.trial, plans[0].config.output_dir / LOCAL_CHECKPOINTS) as entered:
            _run_in(entered, run, plans, sinks, auto)
    else:
        _run_in(context, run, plans, sinks, auto)


def _run_in(
    context: Any, run: TrialRun, plans: list[EvalPlan], sinks: PublishOptions, auto: AutoExport | None
) -> None:
    from eval_framework import cleanup
    from eval_framework.cli.invocation_run import run_invocation
    from eval_framework.determined_trial import is_chief, metrics_of, preemption_check, save_partial

    output_dir = plans[0].config.output_dir
    if not is_chief(context):
        log.info("worker %s of the trial: the chief evaluates and writes", context.distributed.rank)
        return
    _restore(context, run.trial, output_dir)
    finished: list[int] = []

    def report(index: int, outcome: EvalOutcome) -> None:
        metrics = metrics_of(outcome.metadata.task.name, outcome.results.metrics.overall)
        context.train.report_validation_metrics(steps_completed=index + 1, metrics=metrics)
        finished.append(index)
        if run.trial.local:  # what the web UI would chart, shown where a local run can see it
            from eval_framework.reporting import stderr

            shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            stderr.print(f"Determined validation metrics (step {index + 1}): {shown}", markup=False)

    try:
        with cleanup.stop_checks(preemption_check(context)):
            run_invocation(plans, _with_trial(sinks, run), auto, after_task=report, cluster=_recorded(run))
    except cleanup.Preempted as exc:
        from eval_framework.reporting import stderr

        names = [p.bundle_name for p in plans] + ["invocations"]
        storage_id = save_partial(context, output_dir, names, steps_completed=len(finished))
        exc.reason += f"; the bundles so far are checkpoint {storage_id}, which the trial resumes from"
        stderr.print(f"Saved checkpoint {storage_id} ({len(finished)} of {len(plans)} tasks finished).")
        raise


def _restore(context: Any, trial: Trial, output_dir: Path) -> None:
    """A resumed trial continues the bundles its latest checkpoint holds."""
    from eval_framework.determined_trial import restore

    if trial.latest_checkpoint is None:
        return
    restored = restore(
        context, trial.latest_checkpoint, output_dir, output_dir / f"{LOCAL_CHECKPOINTS}.restoring"
    )
    if restored:
        log.warning("continuing from checkpoint %s: %s", trial.latest_checkpoint, ", ".join(restored))


def _recorded(run: TrialRun) -> dict[str, Any]:
    """What a bundle's metadata says of the trial (environment.cluster)."""
    described = {"experiment_name": run.experiment_name, "description": run.description}
    return {**run.trial.ids(), **{k: v for k, v in described.items() if v}}


def _with_trial(sinks: PublishOptions, run: TrialRun) -> PublishOptions:
    """Live W&B logging records the trial (its ids, the experiment's name and description)."""
    if sinks.wandb is None:
        return sinks
    extra = {**sinks.wandb.extra_config, **run.trial.ids()}
    if run.experiment_name:
        extra["determined_experiment_name"] = run.experiment_name
    wandb = dataclasses.replace(sinks.wandb, extra_config=extra, notes=sinks.wandb.notes or run.description)
    return dataclasses.replace(sinks, wandb=wandb)
