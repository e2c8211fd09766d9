"""W&B logging around a running evaluation, and scores logged into someone's training run."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from eval_framework import cleanup
from eval_framework.errors import ConfigError, WandbLogError
from eval_framework.redact import scrub
from eval_framework.results import Bundle
from eval_framework.sinks.wandb_mode import choose_mode
from eval_framework.sinks.wandb_sink import LogReport, finish, log_bundle, offline_dir, open_run_or_offline
from eval_framework.sinks.wandb_spec import WandbOptions, build_spec

log = logging.getLogger(__name__)


class LiveRun:
    """Live logging around one evaluation: the run opens when the evaluation starts (so a crash or
    preemption is recorded on it) and receives the bundle's records when it finishes."""

    def __init__(self, options: WandbOptions) -> None:
        self.options = options
        self.mode, self.note = choose_mode(options)
        self.run: Any = None
        self.error: WandbLogError | None = None
        self.bundle_dir: Path | None = None

    def started(self, bundle: Bundle) -> None:
        self.bundle_dir = bundle.dir
        if self.mode == "disabled":
            return
        try:
            # One attempt: the evaluation must not wait minutes for an unreachable server (each
            # attempt may take WANDB_INIT_TIMEOUT); logging is retried, in full, at the end. A stop
            # arriving meanwhile waits for the run to exist, so that it can be marked preempted.
            with cleanup.stops_deferred():
                self.run, self.mode = open_run_or_offline(bundle, self.options, self.mode, attempts=1)
        except WandbLogError as exc:  # the evaluation goes on; the end says it once if it persists
            log.info("%s; evaluating anyway, logging is retried when it finishes", exc)
            self.error = exc

    def interrupted(self, exc: BaseException) -> None:
        """The evaluation stopped early (preemption, Ctrl-C, crash): a later rerun resumes the run."""
        if self.run is None:
            return
        try:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                self.run.mark_preempting()
        except Exception as error:  # the stop is the news, not this  # noqa: BLE001
            log.warning("could not mark the W&B run as preempted: %s", scrub(str(error)))
        finish(self.run, exit_code=1)
        self.run = None

    def finished(self, bundle_dir: Path) -> LogReport:
        exit_code = 1
        try:
            report = log_bundle(bundle_dir, self.options, run=self.run, mode=self.mode)
            exit_code = 0
            return report
        finally:
            if self.run is not None:
                partial = offline_dir(self.run) if exit_code else None
                finish(self.run, exit_code)
                self.run = None
                if partial is not None:  # the final log failed or was stopped: half a log, as above
                    shutil.rmtree(partial, ignore_errors=True)


def log_to_training_run(
    run: Any, bundle_dir: Path, step: int, step_metric: str = "trainer/global_step", prefix: str = "eval"
) -> dict[str, Any]:
    """Log a finished bundle's scores into an existing (training) run at a training step.

    W&B drops a logged step lower than the run's current one, so the scores are keyed to
    ``step_metric`` with ``define_metric`` instead of the run's own step. Returns what was logged.
    """
    bundle = Bundle(bundle_dir)
    if not bundle.is_complete():
        raise ConfigError(f"{bundle_dir} is not a finished evaluation bundle; finish or rerun it first")
    spec = build_spec(bundle, WandbOptions(project=str(getattr(run, "project", "") or "training")))
    run.define_metric(step_metric)
    run.define_metric(f"{prefix}/{spec.task}/*", step_metric=step_metric)
    values: dict[str, Any] = {step_metric: step}
    values.update({f"{prefix}/{k}": v for k, v in spec.summary.items() if v is not None})
    run.log(values)
    return values
