"""``log_mode: multi_task`` as data: what one task contributes to its checkpoint version's run, and
the run's config and summary made from every task's contribution.

A task's contribution is a ``TaskRecord``: its settings (the config under ``tasks.<task>``) and its
summary keys (``<task>/<metric>`` as per_task names them, with the samples table's entry once it is
logged). Each record is also stored as its own run file (``eval_framework/tasks/<task>.json``), so
writers of different tasks never overwrite each other's; the run's summary and config are always
derived from all the records, whoever writes them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eval_framework.results import Bundle
from eval_framework.sinks.base import checkpoint_version_key
from eval_framework.sinks.wandb_names import JOB_TYPE_MAX, RUN_NAME_MAX, artifact_name, shorten, tag
from eval_framework.sinks.wandb_spec import RunSpec, WandbOptions, build_spec

#: Where each task's record lives among the run's files.
TASKS_DIR = "eval_framework/tasks"
#: The run config key holding each task's settings.
TASKS_KEY = "tasks"
#: The per_task config keys that describe one task's evaluation (the rest describe the checkpoint).
TASK_KEYS = (
    "task_name", "task_kind", "language", "num_fewshot", "num_samples", "num_samples_requested",
    "subjects", "seed", "metrics", "dataset", "dataset_revision", "prompt_version",
    "eval_framework_version", "evaluation_hash", "bundle", "hf_upload_url",
)  # fmt: skip
RECORD_FORMAT = 1


@dataclass(frozen=True)
class TaskRecord:
    """One task's values in a multi_task run; the latest export of a task replaces its record."""

    task: str
    settings: dict[str, Any]  #: the config under ``tasks.<task>``
    summary: dict[str, Any]  #: every summary key this task owns
    records: str = ""  #: digest of what the export sent (equal digests: an equal export)
    exported_at: str = ""  #: ISO time of the export (the later of two records of a task wins)

    def to_json(self) -> str:
        return json.dumps({"format": RECORD_FORMAT, **dataclasses.asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_data(cls, data: Any) -> TaskRecord | None:
        """A record read back (a run file, this machine's state); None when it is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("task"), str):
            return None
        if not isinstance(data.get("settings"), dict) or not isinstance(data.get("summary"), dict):
            return None
        return cls(
            task=data["task"],
            settings=data["settings"],
            summary=data["summary"],
            records=str(data.get("records") or ""),
            exported_at=str(data.get("exported_at") or ""),
        )


def file_name(task: str) -> str:
    """The run file of a task's record (one per task: writers of two tasks never share a file)."""
    return f"{TASKS_DIR}/{artifact_name(task)}.json"


def multi_run_id(bundle: Bundle, group: str | None) -> str:
    """The run of a checkpoint version (and group): the same on every machine, whatever the task."""
    return f"ckpt-{checkpoint_version_key(bundle, group)[:24]}"


def build_multi_spec(bundle: Bundle, options: WandbOptions) -> tuple[RunSpec, TaskRecord]:
    """The multi_task run as this bundle sees it (config: the checkpoint's keys and this task's
    settings; summary: this task's keys), and the bundle's task record (not yet timed)."""
    base = build_spec(bundle, options)
    settings = {k: base.config.get(k) for k in TASK_KEYS}
    settings["content_hash"] = base.content_hash
    settings["results_artifact"] = (
        f"{base.artifact_name}:{base.artifact_alias}" if options.upload_results else None
    )
    top = {k: v for k, v in base.config.items() if k not in TASK_KEYS}
    top["log_mode"] = "multi_task"
    ckpt = base.checkpoint
    label = f"{ckpt.name}:{ckpt.version}" if ckpt.version else ckpt.name
    spec = dataclasses.replace(
        base,
        run_id=options.run_id or multi_run_id(bundle, options.group),
        job_type=shorten(options.job_type or "evaluation", JOB_TYPE_MAX),
        name=shorten(options.name or f"{label} all tasks", RUN_NAME_MAX),
        tags=tuple(dict.fromkeys(tag(t) for t in (*options.tags, "multi_task") if t.strip())),
        notes=options.notes or f"Every task exported for {label} (log_mode: multi_task)",
        config={**top, TASKS_KEY: {base.task: settings}},
    )
    return spec, TaskRecord(task=base.task, settings=settings, summary=dict(base.summary))


def stamped(record: TaskRecord, records: str, summary_extra: Mapping[str, Any]) -> TaskRecord:
    """The record as exported now: its digest, the time, and keys logged with it (the table)."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    return dataclasses.replace(
        record, records=records, exported_at=now, summary={**record.summary, **summary_extra}
    )


def latest(*sources: Iterable[TaskRecord]) -> dict[str, TaskRecord]:
    """One record per task: the most recently exported one."""
    out: dict[str, TaskRecord] = {}
    for source in sources:
        for record in source:
            held = out.get(record.task)
            if held is None or record.exported_at >= held.exported_at:
                out[record.task] = record
    return out


def run_config(top: Mapping[str, Any], records: Mapping[str, TaskRecord]) -> dict[str, Any]:
    """The run config: the checkpoint's keys, and each task's settings under ``tasks.<task>``."""
    return {**top, TASKS_KEY: {task: r.settings for task, r in sorted(records.items())}}


def run_summary(records: Mapping[str, TaskRecord]) -> dict[str, Any]:
    return {k: v for _, r in sorted(records.items()) for k, v in r.summary.items()}


def owner(key: str, tasks: Iterable[str]) -> str | None:
    """The task a summary key belongs to (``<task>/...``; the longest matching task name)."""
    found = [t for t in tasks if key.startswith(f"{t}/")]
    return max(found, key=len) if found else None


def stale_keys(keys: Iterable[str], records: Mapping[str, TaskRecord]) -> list[str]:
    """Keys of a known task that its record no longer has (a metric no longer exported)."""
    return sorted(k for k in keys if (t := owner(k, records)) is not None and k not in records[t].summary)


def lacking(
    summary: Mapping[str, Any], config: Mapping[str, Any], records: Mapping[str, TaskRecord]
) -> list[str]:
    """The tasks whose record the run's summary or config does not hold exactly (a concurrent
    writer's whole summary replaced theirs), with the keys left over from an older record."""
    held = config.get(TASKS_KEY)
    tasks: Mapping[str, Any] = held if isinstance(held, dict) else {}
    out = []
    for task, record in sorted(records.items()):
        values_held = all(k in summary and same(summary[k], v) for k, v in record.summary.items())
        if not values_held or not same(tasks.get(task), record.settings):
            out.append(task)
    stale = {owner(k, records) for k in stale_keys(summary, records)}
    return sorted(set(out) | {t for t in stale if t})


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values (a float may come back from the server formatted differently)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or math.isclose(a, b, rel_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
