"""Load rows of a Hugging Face dataset at a pinned revision, or from a local copy."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_framework.errors import DatasetUnavailableError, missing_extra
from eval_framework.tasks.local_data import SUFFIXES, find_split_file, read_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSource:
    path: str
    name: str | None
    revision: str

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "config": self.name, "revision": self.revision}


def local_split_file(source: DatasetSource, split: str, data_dir: Path) -> Path | None:
    """``data_dir/<config>/<split>.*``, else ``data_dir/<split>.*``: the file a local copy serves."""
    for folder in ([data_dir / source.name] if source.name else []) + [data_dir]:
        found = find_split_file(folder, split)
        if found is not None:
            return found
    return None


def load_split(
    source: DatasetSource, split: str, data_dir: Path | None, task_name: str
) -> list[dict[str, Any]]:
    """Rows of ``split``: from ``data_dir/<config>/<split>.*`` or ``data_dir/<split>.*`` when given,
    else through ``datasets`` at the pinned revision (its cache works offline)."""
    if data_dir is not None:
        found = local_split_file(source, split, data_dir)
        if found is not None:
            return read_rows(found)
        raise DatasetUnavailableError(
            f"no '{split}' file for {task_name} in --task-data-dir {data_dir}; expected "
            f"{split}{{{','.join(SUFFIXES)}}} (optionally under a '{source.name}' folder); put the file "
            "there or fix --task-data-dir"
        )
    try:
        import datasets
    except ImportError as exc:
        raise missing_extra("datasets", "datasets", DatasetUnavailableError) from exc
    try:
        ds = datasets.load_dataset(source.path, source.name, revision=source.revision, split=split)
    except Exception as exc:  # datasets raises many types (ConnectionError, FileNotFoundError, ...)
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DatasetUnavailableError(
            f"cannot load dataset {source.path}"
            + (f"/{source.name}" if source.name else "")
            + f" split '{split}' at revision {source.revision} ({reason}). Offline? Use a local copy "
            "with --task-data-dir DIR (files <split>.jsonl/.csv/.parquet), or define a local data task "
            "in YAML (docs/tasks.md)"
        ) from exc
    return [dict(row) for row in ds]
