"""What one bundle becomes in MLflow: a pure function of the bundle and the exporter's keys.

``per_task``: one run per evaluation, found by the tag ``eval_framework.evaluation_hash``; the
task settings are params (they define the evaluation, so they never change for its run).
``multi_task``: one run per checkpoint version (and group), found by the tag
``eval_framework.checkpoint_version_hash``; each task's metrics are ``<task>/<metric>`` and its
settings are tags ``<task>/<setting>`` (a task exported again with other settings changes
them, and MLflow params cannot change).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval_framework.redact import redact, scrub
from eval_framework.results import LOG, METADATA, RESULTS, SAMPLES, Bundle
from eval_framework.sinks.base import checkpoint_version_key, metric_columns
from eval_framework.sinks.mlflow_names import encode, task_key
from eval_framework.sinks.wandb_spec import checkpoint_info

#: Tags this exporter writes on every run (the ``mlflow.`` ones are MLflow's own).
EVALUATION = "eval_framework.evaluation_hash"
VERSION_KEY = "eval_framework.checkpoint_version_hash"
LOG_MODE = "eval_framework.log_mode"
GROUP = "eval_framework.group"
FRAMEWORK_VERSION = "eval_framework.version"
ARTIFACTS = "eval_framework.artifacts_sha256"
RUN_NAME = "mlflow.runName"
DESCRIPTION = "mlflow.note.content"
#: Tag prefixes a user's ``tags`` and ``extra_metadata`` may not use.
RESERVED = ("eval_framework.", "mlflow.")
#: The bundle files logged as artifacts (exports.jsonl, the ledger, changes with every export).
ARTIFACT_FILES = (METADATA, RESULTS, SAMPLES, LOG)
#: Per-task tag (multi_task) saying when the task was last sent: the later export of a task
#: wins when two runs are folded into one.
EXPORTED_AT = "exported_at"


@dataclass(frozen=True)
class Options:
    """The exporter's keys that shape a record."""

    log_mode: str = "per_task"
    group: str | None = None
    run_name: str | None = None
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    extra_metadata: Mapping[str, Any] = field(default_factory=dict)
    log_metrics: tuple[str, ...] = ()
    log_artifacts: bool = True


@dataclass(frozen=True)
class Record:
    """A bundle as MLflow params, tags, metrics and artifacts, and the tag its run is found by."""

    key_tag: str
    key: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    files: tuple[Path, ...]
    artifact_path: str
    #: the tag that says this bundle was sent to the run before (created vs updated)
    marker: str
    #: the tag that gets the send time (multi_task), or None
    stamp: str | None = None

    @property
    def create_tags(self) -> dict[str, str]:
        """The tags a new run is created with, so that it can be found at once."""
        return {self.key_tag: self.key, LOG_MODE: self.tags[LOG_MODE]}


def build(bundle: Bundle, options: Options) -> Record:
    metadata = bundle.metadata()
    task, k, n = metadata.task.name, metadata.task.num_fewshot, metadata.task.num_samples
    ckpt = checkpoint_info(metadata)
    label = f"{ckpt.name}:{ckpt.version}" if ckpt.version else ckpt.name
    multi = options.log_mode == "multi_task"
    run_tags = {
        LOG_MODE: options.log_mode,
        "eval_framework.checkpoint": ckpt.name,
        "eval_framework.checkpoint_version": ckpt.version,
        "eval_framework.checkpoint_qualified_name": ckpt.qualified_name,
        "eval_framework.checkpoint_digest": ckpt.digest,
        "eval_framework.model": metadata.model.name,
        GROUP: options.group,
        **_user_tags(options),
    }
    settings = {
        "evaluation_hash": metadata.natural_key,
        "num_fewshot": k,
        "num_samples": n,
        "seed": metadata.task.seed,
        "bundle": bundle.dir.name,
    }
    files = _files(bundle) if options.log_artifacts else ()
    columns = _numbers(metric_columns(bundle.results(), options.log_metrics))
    if multi:
        own = {
            **{task_key(task, name): value for name, value in settings.items()},
            task_key(task, "eval_framework_version"): metadata.framework.version,
        }
        if files:
            own[task_key(task, "artifacts_sha256")] = files_digest(files)
        suffix = f" [{options.group}]" if options.group else ""
        return Record(
            key_tag=VERSION_KEY,
            key=checkpoint_version_key(bundle, options.group),
            params={"model": metadata.model.name, "checkpoint": label},
            tags=_strings({**run_tags, RUN_NAME: options.run_name or label + suffix, **own}),
            metrics={task_key(task, name): value for name, value in columns.items()},
            files=files,
            artifact_path=encode(task),
            marker=task_key(task, "evaluation_hash"),
            stamp=task_key(task, EXPORTED_AT),
        )
    own = {
        EVALUATION: metadata.natural_key,
        "eval_framework.bundle": bundle.dir.name,
        FRAMEWORK_VERSION: metadata.framework.version,
    }
    if files:
        own[ARTIFACTS] = files_digest(files)
    return Record(
        key_tag=EVALUATION,
        key=metadata.natural_key,
        params={
            "task": task,
            "num_fewshot": str(k),
            "num_samples": str(n),
            "seed": str(metadata.task.seed),
            "model": metadata.model.name,
            "checkpoint": label,
        },
        tags=_strings({**run_tags, RUN_NAME: options.run_name or f"{label} {task} {k}-shot n={n}", **own}),
        metrics={encode(name): value for name, value in columns.items()},
        files=files,
        artifact_path="bundle",
        marker=FRAMEWORK_VERSION,
    )


def _user_tags(options: Options) -> dict[str, Any]:
    """``tags``, ``extra_metadata`` (one tag per key, non-strings as JSON) and ``description``,
    secrets masked."""
    extra = {
        key: value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        for key, value in redact(dict(options.extra_metadata)).items()
    }
    tags: dict[str, Any] = {**extra, **redact(dict(options.tags))}
    if options.description is not None:
        tags[DESCRIPTION] = scrub(options.description)
    return tags


def _strings(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tag values as text; a value that is not there (a checkpoint without a version) is no tag."""
    return {key: str(value) for key, value in tags.items() if value is not None}


def _numbers(columns: Mapping[str, Any]) -> dict[str, float]:
    """The metric columns MLflow can hold: numbers (a text value or a missing stderr is left out)."""
    return {
        name: float(value)
        for name, value in columns.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _files(bundle: Bundle) -> tuple[Path, ...]:
    return tuple(bundle.dir / name for name in ARTIFACT_FILES if (bundle.dir / name).is_file())


def files_digest(files: tuple[Path, ...]) -> str:
    """sha256 over the artifact files' names and bytes: equal files, equal digest."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def same_number(stored: float | None, value: float) -> bool:
    if stored is None:
        return False
    return stored == value or (math.isnan(stored) and math.isnan(value))


def now_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
