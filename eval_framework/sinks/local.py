"""The ``local`` destination: a summary file per bundle and one table across bundles, JSON or CSV.

``<output_dir>/summary.<format>`` holds one row per evaluation (checkpoint version x task x the
settings that change results), keyed by the evaluation hash: exporting an evaluation again
updates its row, another evaluation adds one, and metric columns new to the table are appended
after the existing ones. ``<output_dir>/bundles/<bundle>.<format>`` holds one bundle's summary
(per-subject values too, in JSON). Every write is atomic (a reader never sees half a file), and
writers of one table take a lock beside it, so concurrent exports lose no row.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field

from eval_framework.bundle_io import atomic_write_text, file_in_the_way, write_failure
from eval_framework.errors import ConfigError, OutputError
from eval_framework.results import Bundle
from eval_framework.sinks.base import Exported, Status, metric_columns, wanted
from eval_framework.sinks.wandb_spec import checkpoint_info

#: The combined table's key column; rows are upserted by it.
KEY = "evaluation_hash"
#: Seconds a writer waits for another writer of the same table.
LOCK_WAIT_S = 120.0
SUMMARY_VERSION = 1


class LocalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    output_dir: Path = Field(Path("exports"), description="where the summaries go")
    format: Literal["json", "csv"] = "json"
    log_metrics: tuple[str, ...] = Field((), description="export metrics whose names contain these")


def summary_row(bundle: Bundle, patterns: tuple[str, ...]) -> dict[str, Any]:
    """One evaluation as a flat row: what was evaluated, how, and its overall metrics."""
    metadata, results = bundle.metadata(), bundle.results()
    ckpt = checkpoint_info(metadata)
    return {
        "checkpoint": ckpt.name,
        "checkpoint_version": ckpt.version,
        "task": metadata.task.name,
        "num_fewshot": metadata.task.num_fewshot,
        "num_samples": metadata.task.num_samples,
        **metric_columns(results, patterns),
        "model": metadata.model.name,
        "seed": metadata.task.seed,
        "eval_framework_version": metadata.framework.version,
        KEY: metadata.natural_key,
        "bundle": str(bundle.dir.resolve()),
    }


def bundle_summary(bundle: Bundle, patterns: tuple[str, ...]) -> dict[str, Any]:
    """The per-bundle JSON summary: the row, with the checkpoint's exact identity and the
    per-subject values."""
    metadata, results = bundle.metadata(), bundle.results()
    ckpt = checkpoint_info(metadata)
    subjects = {
        subject: {name: stats.model_dump() for name, stats in block.items() if wanted(name, patterns)}
        for subject, block in sorted(results.metrics.subjects.items())
    }
    return {
        "summary_version": SUMMARY_VERSION,
        **summary_row(bundle, patterns),
        "checkpoint_qualified_name": ckpt.qualified_name,
        "checkpoint_digest": ckpt.digest,
        "subjects": subjects,
    }


class LocalSink:
    """Summaries as files on this machine (see the module docstring)."""

    name: ClassVar[str] = "local"
    Config: ClassVar[type[BaseModel]] = LocalConfig

    def __init__(self, config: LocalConfig) -> None:
        self.config = config

    @property
    def table_path(self) -> Path:
        return self.config.output_dir / f"summary.{self.config.format}"

    def preflight(self) -> None:
        """The output_dir can be made and written (nothing is created here)."""
        out = self.config.output_dir
        taken = file_in_the_way(out)
        if taken is not None:
            raise ConfigError(
                f"local export: {taken} is a file where the output_dir {out} must be a directory; "
                "choose another output_dir"
            )
        existing = next(p for p in (out, *out.parents) if p.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(
                f"local export: cannot write under {existing} (permission denied); choose another output_dir"
            )

    def _records(self, bundle: Bundle) -> tuple[dict[str, Any], Path, str]:
        """The bundle's row in the table, and its own summary file with that file's text."""
        patterns = self.config.log_metrics
        row = summary_row(bundle, patterns)
        own = self.config.output_dir / "bundles" / f"{bundle.dir.name}.{self.config.format}"
        text = (
            _json_text(bundle_summary(bundle, patterns))
            if self.config.format == "json"
            else _csv_text(list(row), [row])
        )
        return row, own, text

    def publish(self, bundle: Bundle, force: bool = False) -> Exported:
        row, own, text = self._records(bundle)
        try:
            own.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_failure(own.parent, exc) from exc
        own_status = _write_if_changed(own, text, force)
        table_status = self._upsert(row, force)
        return Exported(
            self.name, bundle.dir, _either(own_status, table_status), str(self.table_path.resolve())
        )

    def preview(self, bundle: Bundle) -> Status:
        """What ``publish`` would do, writing nothing."""
        row, own, text = self._records(bundle)
        old = own.read_text(encoding="utf-8") if own.is_file() else None
        own_status: Status = "created" if old is None else "unchanged" if old == text else "updated"
        _, rows = _read_table(self.table_path, self.config.format)
        before = next((r for r in rows if r.get(KEY) == row[KEY]), None)
        table_status: Status = (
            "created"
            if before is None
            else "unchanged"
            if _same(before, row, self.config.format)
            else "updated"
        )
        return _either(own_status, table_status)

    def _upsert(self, row: dict[str, Any], force: bool) -> Status:
        path = self.table_path
        lock = FileLock(str(path.with_name(f".{path.name}.lock")))
        try:
            lock.acquire(timeout=LOCK_WAIT_S)
        except Timeout as exc:
            raise OutputError(
                f"local export: another export held {path} for {LOCK_WAIT_S:g} s; rerun when it is done"
            ) from exc
        try:
            columns, rows = _read_table(path, self.config.format)
            before = next((r for r in rows if r.get(KEY) == row[KEY]), None)
            columns += [c for c in row if c not in columns]  # new metrics after the existing ones
            # in its place when it is there (a re-export moves no row), else at the end
            merged = [row if r.get(KEY) == row[KEY] else r for r in rows] + ([row] if before is None else [])
            if before is not None and _same(before, row, self.config.format) and not force:
                return "unchanged"
            atomic_write_text(path, _table_text(columns, merged, self.config.format))
            return "created" if before is None else "updated"
        finally:
            lock.release()


def _either(*statuses: Status) -> Status:
    """One status for several records: created if any was, else updated if any was."""
    for status in ("created", "updated"):
        if status in statuses:
            return status
    return "unchanged"


def _same(before: dict[str, Any], row: dict[str, Any], fmt: str) -> bool:
    """Whether a stored row already says what ``row`` says (CSV stores text)."""
    if fmt == "json":
        return bool(before == json.loads(json.dumps(row)))
    return all(before.get(k, "") == _cell(v) for k, v in row.items())


def _write_if_changed(path: Path, text: str, force: bool) -> Status:
    try:
        old = path.read_text(encoding="utf-8") if path.is_file() else None
    except OSError as exc:
        raise write_failure(path, exc) from exc
    if old == text and not force:
        return "unchanged"
    atomic_write_text(path, text)
    return "created" if old is None else "updated"


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _cell(value: Any) -> str:
    """A CSV cell: a missing value is empty, a zero is 0, floats keep every digit."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def _csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    return buffer.getvalue()


def _table_text(columns: list[str], rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "csv":
        return _csv_text(columns, rows)
    ordered = [{c: r.get(c) for c in columns if c in r} for r in rows]
    return _json_text({"summary_version": SUMMARY_VERSION, "key": KEY, "columns": columns, "rows": ordered})


def _read_table(path: Path, fmt: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The table's columns and rows; a file that is not such a table is refused, never overwritten
    (it may be someone's own file)."""
    if not path.exists():
        return [], []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(
            f"local export: cannot read {path} ({exc}); move it away (it is kept as it is) and rerun"
        ) from exc
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        columns = list(reader.fieldnames or [])
        if KEY not in columns:
            raise _not_ours(path, f"its header has no {KEY} column")
        return columns, [dict(r) for r in reader]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _not_ours(path, "not valid JSON") from exc
    if not isinstance(data, dict) or data.get("key") != KEY or not isinstance(data.get("rows"), list):
        raise _not_ours(path, "not a summary table written by eval_framework")
    columns = [str(c) for c in data.get("columns") or []]
    return columns, [r for r in data["rows"] if isinstance(r, dict)]


def _not_ours(path: Path, why: str) -> OutputError:
    return OutputError(
        f"local export: {path} is {why}; move it away (it is kept as it is) or choose another output_dir"
    )
