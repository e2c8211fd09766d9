"""The root command as a Determined trial (``--context determined``): the trial's hyperparameters
over the command line, then the invocation inside Determined's Core API context, its metrics
reported per task, only the chief process evaluating and writing."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator
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


_CHIEF_DONE = "eval_framework: the chief is done"


@contextlib.contextmanager
def trial_processes(trial: Trial, output_dir: Path) -> Iterator[Any | None]:
    """Every process of the trial enters Determined's Core API context; the chief (rank 0) gets
    it and evaluates, logs, exports and writes, while the others get None and wait until the chief
    is done, however it ends (so that none of them exits before the trial does, or hangs after).

    The chief's release is a broadcast of ``_CHIEF_DONE`` (and how it ended) that the others wait
    for, reading past any other broadcast: off a cluster, Determined's stand-in preemption check
    broadcasts its answer on every call whatever the preemption mode, and a plain barrier would
    match the first one."""
    from eval_framework.determined_trial import core_context, distributed_context, is_chief
    from eval_framework.reporting import stderr

    if os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1"):  # joining blocks until all have started
        stderr.print(
            f"Process {os.environ.get('RANK', '?')} of the trial's {os.environ['WORLD_SIZE']}: joining "
            "the others (the launcher starts them all; this waits until each has started).",
            markup=False,
        )
    distributed = distributed_context(trial)
    with core_context(trial, output_dir / LOCAL_CHECKPOINTS, distributed) as context:
        if is_chief(context):
            ended = "failed"
            try:
                yield context
                ended = "finished"
            finally:
                context.distributed.broadcast((_CHIEF_DONE, ended))  # the others are released
            return
        rank, size = context.distributed.rank, context.distributed.size
        stderr.print(
            f"Process {rank} of the trial's {size}: the chief (process 0) evaluates, logs, exports "
            "and writes; this one waits for it.",
            markup=False,
        )
        while not (isinstance(said := context.distributed.broadcast(None), tuple) and said[0] == _CHIEF_DONE):
            pass
        if said[1] != "finished":
            stderr.print(
                f"Process {rank}: the chief (process 0) stopped early (its log says why); this one ends too.",
                markup=False,
            )
        yield None


def run_trial(
    run: TrialRun, plans: list[EvalPlan], sinks: PublishOptions, auto: AutoExport | None, context: Any
) -> None:
    """The invocation inside the trial's Core API context (the chief's, entered by
    ``trial_processes``): continued from the trial's latest checkpoint, stopped between batches
    when Determined preempts it, its partial bundles then saved as a checkpoint."""
    from eval_framework import cleanup
    from eval_framework.cli.invocation_run import run_invocation
    from eval_framework.determined_trial import metrics_of, preemption_check, save_partial

    output_dir = plans[0].config.output_dir
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
        cleanup.flush_wandb()  # the checkpoint carries the preempted run's whole W&B log
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
