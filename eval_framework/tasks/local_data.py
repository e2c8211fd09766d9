"""Read local data files (JSONL, JSON, CSV, Parquet) into rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from eval_framework.errors import TaskError, missing_extra

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise TaskError(f"data file {path} does not exist; check the path in the task definition")
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise TaskError(f"{path}:{number} is not valid JSON: {exc.msg}") from exc
            return rows
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise TaskError(f"{path} must hold a JSON list of objects")
            return data
        if suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as handle:
                return list(csv.DictReader(handle))
        if suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError as exc:
                raise missing_extra("pyarrow", "datasets") from exc
            return list(pq.read_table(path).to_pylist())
    except OSError as exc:
        raise TaskError(f"cannot read data file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise TaskError(f"{path} is not valid JSON: {exc.msg}") from exc
    raise TaskError(f"data file {path} has unsupported type {suffix!r}; use one of {', '.join(SUFFIXES)}")


def find_split_file(directory: Path, split: str) -> Path | None:
    """``<dir>/<split>.<jsonl|json|csv|parquet>`` if present."""
    for suffix in SUFFIXES:
        candidate = directory / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    return None
