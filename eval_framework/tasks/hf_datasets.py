"""Load rows of a Hugging Face dataset at a pinned revision, or from a local copy."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_framework.errors import DatasetUnavailableError, brief, missing_extra
from eval_framework.net import Kind, classify
from eval_framework.tasks.local_data import SUFFIXES, find_split_file, read_rows

log = logging.getLogger(__name__)

#: Seconds to wait for the Hub before loading a dataset online.
HUB_CHECK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class DatasetSource:
    path: str
    name: str | None
    revision: str

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "config": self.name, "revision": self.revision}


def local_split_file(source: DatasetSource, split: str, data_dir: Path, only_config: bool) -> Path | None:
    """The file a local copy serves for ``split``: ``data_dir/<config>/<split>.*``, or, for a task
    with one config only, ``data_dir/<split>.*`` as well (for a task with several configs a flat file
    cannot say which config it holds: it would be read as every one of them)."""
    folders = ([data_dir / source.name] if source.name else []) + ([data_dir] if only_config else [])
    for folder in folders:
        found = find_split_file(folder, split)
        if found is not None:
            return found
    return None


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))  # fmt: skip


def _check_hub_reachable(source: DatasetSource, split: str) -> None:
    """Online, ``datasets`` retries an unreachable Hub for half a minute and prints each retry; one
    plain request first says it in a line, at once (offline, the local cache is used as is)."""
    if _offline():
        return
    import httpx
    from huggingface_hub import constants

    try:
        httpx.head(constants.ENDPOINT, timeout=HUB_CHECK_TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as exc:
        failure = classify(exc)
        if failure.kind in (Kind.UNREACHABLE, Kind.TIMEOUT, Kind.CONNECTION):
            config = f"/{source.name}" if source.name else ""
            raise DatasetUnavailableError(
                f"cannot load dataset {source.path}{config} split '{split}': the Hugging Face Hub at "
                f"{constants.ENDPOINT} cannot be reached ({failure.reason}); with the dataset in the local "
                "cache set HF_DATASETS_OFFLINE=1, or use a local copy with --task-data-dir DIR"
            ) from exc


def load_split(
    source: DatasetSource, split: str, data_dir: Path | None, task_name: str, only_config: bool = True
) -> list[dict[str, Any]]:
    """Rows of ``split``: from the local copy in ``data_dir`` when given (see ``local_split_file``),
    else through ``datasets`` at the pinned revision (its cache works offline)."""
    if data_dir is not None:
        found = local_split_file(source, split, data_dir, only_config)
        if found is not None:
            return read_rows(found)
        if not source.name:
            where = split
        elif only_config:
            where = f"{split} (or {source.name}/{split})"
        else:
            where = f"{source.name}/{split}"
        raise DatasetUnavailableError(
            f"no '{split}' file for {task_name} in --task-data-dir {data_dir}; expected {where}"
            f"{{{','.join(SUFFIXES)}}}"
            + ("" if only_config else ", one folder per config of this task")
            + "; put the file there or fix --task-data-dir"
        )
    try:
        import datasets
    except ImportError as exc:
        raise missing_extra("datasets", "datasets", DatasetUnavailableError) from exc
    _check_hub_reachable(source, split)
    try:
        ds = datasets.load_dataset(source.path, source.name, revision=source.revision, split=split)
    except Exception as exc:  # datasets raises many types (ConnectionError, FileNotFoundError, ...)
        reason = brief(exc)
        raise DatasetUnavailableError(
            f"cannot load dataset {source.path}"
            + (f"/{source.name}" if source.name else "")
            + f" split '{split}' at revision {source.revision} ({reason}). Offline? Use a local copy "
            "with --task-data-dir DIR (files <split>.jsonl/.csv/.parquet), or define a local data task "
            "in YAML (docs/tasks.md)"
        ) from exc
    return [dict(row) for row in ds]
