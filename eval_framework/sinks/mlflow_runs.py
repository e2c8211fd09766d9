"""Finding a record's run by its tag, creating it safely when several exports race, and sending
what the run does not hold yet.

MLflow has no "create if absent": two exports that find no run for a key and both create one
would leave two. So a run is created, then the key is searched again: the oldest run holding it
(start time, then run id) is the one every export keeps, and the younger ones are folded into it
(each task they hold that it lacks, or holds from an earlier export, is copied) and deleted.
After sending, an export checks that its run is still the oldest one; if a run older still
appeared meanwhile (clocks of two machines disagree, or two runs started in the same
millisecond), it sends to that one too, so nothing sent is lost when the younger run is folded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from eval_framework.errors import ExportError
from eval_framework.sinks.base import Status
from eval_framework.sinks.mlflow_names import split_task_key
from eval_framework.sinks.mlflow_records import EXPORTED_AT, Record, now_stamp, same_number

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

#: MLflow's limits for one log_batch call.
BATCH_TAGS = 100
BATCH_METRICS = 1000
#: Rounds of send-then-check before giving up on a key whose runs keep changing.
ROUNDS = 3


def find(mlflow: MlflowClient, experiment: str, record: Record) -> list[Run]:
    """The active runs holding the record's key, oldest first."""
    from mlflow.entities import ViewType

    runs = mlflow.search_runs(
        [experiment],
        filter_string=f"tags.`{record.key_tag}` = '{record.key}'",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=100,
    )
    return sorted(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id))


def settle(mlflow: MlflowClient, experiment: str, record: Record) -> Run:
    """The one run for the record's key: found, or created; younger duplicates folded into it."""
    runs = find(mlflow, experiment, record)
    if not runs:
        mine = mlflow.create_run(experiment, tags=record.create_tags)
        runs = find(mlflow, experiment, record) or [mine]
    oldest, *younger = runs
    for run in younger:
        fold(mlflow, run, oldest)
        _delete(mlflow, run.info.run_id)
    return mlflow.get_run(oldest.info.run_id)


def status(run: Run | None, record: Record) -> Status:
    """created: the run does not hold this bundle; unchanged: it holds exactly these values."""
    if run is None or record.marker not in run.data.tags:
        return "created"
    return "updated" if any(missing(run, record, force=False)) else "unchanged"


def missing(run: Run, record: Record, force: bool) -> tuple[dict[str, str], dict[str, str], dict[str, float]]:
    """The params, tags and metrics the run lacks or holds with other values (all, with ``force``).
    A param it holds already is never sent again: MLflow params cannot change."""
    data = run.data
    params = {k: v for k, v in record.params.items() if k not in data.params}
    tags = {k: v for k, v in record.tags.items() if force or data.tags.get(k) != v}
    metrics = {k: v for k, v in record.metrics.items() if force or not same_number(data.metrics.get(k), v)}
    return params, tags, metrics


def send(mlflow: MlflowClient, run: Run, record: Record, force: bool) -> None:
    """What the run lacks: params, tags and metrics, then the files when they changed, and last
    the tag naming the files, so that an interrupted upload is redone by the next export."""
    from mlflow.entities import Metric, Param, RunTag

    run_id = run.info.run_id
    params, tags, metrics = missing(run, record, force)
    files_tag = next((k for k in tags if k.endswith("artifacts_sha256")), None)
    last = {files_tag: tags.pop(files_tag)} if files_tag else {}
    if record.stamp and (params or tags or metrics or last):
        last[record.stamp] = now_stamp()
    stamp = int(time.time() * 1000)
    batch(
        mlflow,
        run_id,
        [Param(k, v) for k, v in params.items()],
        [RunTag(k, v) for k, v in tags.items()],
        [Metric(k, v, stamp, 0) for k, v in metrics.items()],
    )
    if files_tag and record.files:
        for path in record.files:
            mlflow.log_artifact(run_id, str(path), record.artifact_path)
    batch(mlflow, run_id, [], [RunTag(k, v) for k, v in last.items()], [])


def batch(
    mlflow: MlflowClient, run_id: str, params: Sequence[Any], tags: Sequence[Any], metrics: Sequence[Any]
) -> None:
    """log_batch within MLflow's limits per call."""
    if params:
        mlflow.log_batch(run_id, params=list(params))
    for at in range(0, len(tags), BATCH_TAGS):
        mlflow.log_batch(run_id, tags=list(tags[at : at + BATCH_TAGS]))
    for at in range(0, len(metrics), BATCH_METRICS):
        mlflow.log_batch(run_id, metrics=list(metrics[at : at + BATCH_METRICS]))


def fold(mlflow: MlflowClient, younger: Run, oldest: Run) -> None:
    """Copy into ``oldest`` each task ``younger`` holds that it lacks, or holds from an earlier
    export (``log_mode: multi_task``; a per_task run holds no task of its own to copy)."""
    from mlflow.entities import Metric, RunTag

    theirs, ours = younger.data.tags, oldest.data.tags
    tasks = {
        parts[0]
        for key in theirs
        if (parts := split_task_key(key)) is not None and parts[1] == "evaluation_hash"
    }
    prefixes = tuple(
        key.rpartition("/")[0] + "/"
        for key in theirs
        if (parts := split_task_key(key)) is not None
        and parts[0] in tasks
        and parts[1] == EXPORTED_AT
        and theirs[key] > ours.get(key, "")
    )
    if not prefixes:
        return
    stamp = int(time.time() * 1000)
    # The artifacts are not copied, nor is the tag naming them: the task's next export uploads them.
    tags = [
        RunTag(k, v)
        for k, v in theirs.items()
        if k.startswith(prefixes) and not k.endswith("/artifacts_sha256")
    ]
    metrics = [Metric(k, v, stamp, 0) for k, v in younger.data.metrics.items() if k.startswith(prefixes)]
    batch(mlflow, oldest.info.run_id, [], tags, metrics)


def _delete(mlflow: MlflowClient, run_id: str) -> None:
    try:
        mlflow.delete_run(run_id)
    except Exception as exc:  # deleted by another export that folded it first
        if getattr(exc, "error_code", "") not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise


def publish(mlflow: MlflowClient, experiment: str, record: Record, force: bool) -> tuple[Status, Run]:
    """Send the record to its run (see the module docstring); its status and the run."""
    run = settle(mlflow, experiment, record)
    done = status(run, record)
    if done == "unchanged":
        if not force:
            return done, run
        done = "updated"  # sent again, as asked
    for attempt in range(ROUNDS):
        try:
            send(mlflow, run, record, force)
        except Exception:
            if attempt == ROUNDS - 1:
                raise
            # Another export wrote one of these keys at the same moment (the store refuses the
            # second first-write of a key), or folded this run away: look again, send what is missing.
            run = settle(mlflow, experiment, record)
            continue
        oldest = find(mlflow, experiment, record)
        if oldest and oldest[0].info.run_id == run.info.run_id:
            return done, run
        run = settle(mlflow, experiment, record)
    raise ExportError(
        f"the runs tagged {record.key_tag} = {record.key} kept changing while this export sent to "
        "them (other exports of the same key at the same time)",
        sink="mlflow",
        hint="export again",
    )
