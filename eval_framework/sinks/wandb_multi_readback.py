"""A multi_task run as the W&B server holds it, read through the public API: its summary, its
config, and every task record stored as a run file (``eval_framework/tasks/<task>.json``)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval_framework.sinks.wandb_multi_records import TASKS_DIR, TaskRecord, latest
from eval_framework.sinks.wandb_sink import _call, _wandb
from eval_framework.sinks.wandb_spec import RunSpec


@dataclass
class ServerRun:
    exists: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    records: dict[str, TaskRecord] = field(default_factory=dict)  #: task -> its record file


def read_run(spec: RunSpec) -> ServerRun:
    """The run now (``exists`` False when the server has no such run yet); each call asks anew."""
    return _call("read-back of the multi_task run", lambda: _read(spec),
                 hint="check that the project and entity exist and that the key may read them")  # fmt: skip


def _read(spec: RunSpec) -> ServerRun:
    wandb = _wandb()
    from wandb.apis.public.runs import RunNotFoundError

    api = wandb.Api()  # a fresh client: the public API caches runs it has read
    path = "/".join(p for p in (spec.entity, spec.project, spec.run_id) if p)
    try:
        run = api.run(path)
    except wandb.errors.CommError as exc:
        if isinstance(getattr(exc, "exc", None), RunNotFoundError):
            return ServerRun()
        raise
    found: list[TaskRecord] = []
    with tempfile.TemporaryDirectory(prefix="eval-framework-wandb-") as tmp:
        for file in run.files(pattern=f"{TASKS_DIR}/%"):
            if not file.name.startswith(f"{TASKS_DIR}/") or not file.name.endswith(".json"):
                continue  # the pattern's '_' matches any character
            file.download(root=tmp, replace=True).close()
            try:
                data = json.loads((Path(tmp) / file.name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not ours, or damaged: its task is rewritten by its next export
            record = TaskRecord.from_data(data)
            if record is not None:
                found.append(record)
    return ServerRun(True, dict(run.summary_metrics), dict(run.config), latest(found))
