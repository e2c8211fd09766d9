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
from pydantic import BaseModel, ConfigDict, Field, field_validator

from eval_framework.bundle_io import atomic_write_text, file_in_the_way
from eval_framework.errors import ConfigError, OutputError
from eval_framework.results import Bundle
from eval_framework.sinks.base import Exported, Status, metric_columns, wanted
from eval_framework.sinks.wandb_spec import checkpoint_info
from eval_framework.textfiles import decode_text

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

    @field_validator("output_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Absolute: the retry command printed after a failure works from any directory."""
        return value.expanduser().absolute()


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
        for folder in (out / "bundles", out, *out.parents):
            if folder.exists():
                if not os.access(folder, os.W_OK | os.X_OK):
                    raise ConfigError(
                        f"local export: cannot write in {folder} (permission denied); choose another "
                        "output_dir or fix its permissions"
                    )
                if folder != out / "bundles":
                    break
        _read_table(self.table_path, self.config.format)  # someone else's file there: refused now

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
            raise _cannot_write(own.parent, exc) from exc
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
            if _same(before, {**before, **row}, self.config.format)
            else "updated"
        )
        return _either(own_status, table_status)

    def _upsert(self, row: dict[str, Any], force: bool) -> Status:
        path, fmt = self.table_path, self.config.format
        lock = FileLock(str(path.with_name(f".{path.name}.lock")))
        try:
            lock.acquire(timeout=LOCK_WAIT_S)
        except Timeout as exc:
            raise OutputError(
                f"local export: another export held {path} for {LOCK_WAIT_S:g} s; rerun when it is done"
            ) from exc
        except OSError as exc:
            raise _cannot_write(path.parent, exc) from exc
        try:
            columns, rows = _read_table(path, fmt)
            at = next((i for i, r in enumerate(rows) if r.get(KEY) == row[KEY]), None)
            # A column this export does not write (a metric left out by log_metrics, a user's own
            # notes) keeps its value; the row stays in its place.
            merged = row if at is None else {**rows[at], **row}
            if at is not None and _same(rows[at], merged, fmt) and not force:
                return "unchanged"
            if at is None:
                rows.append(merged)
            else:
                rows[at] = merged
            columns += [c for c in merged if c not in columns]  # new columns after the existing ones
            _write(path, _table_text(columns, rows, fmt))
            return "created" if at is None else "updated"
        finally:
            lock.release()


def _either(own: Status, table: Status) -> Status:
    """The export's status follows its table row: created only when the row is new; updated when
    the row changed or anything else was written (the bundle's own file, new or changed)."""
    if table != "unchanged":
        return table
    return "unchanged" if own == "unchanged" else "updated"


def _same(before: dict[str, Any], row: dict[str, Any], fmt: str) -> bool:
    """Whether a stored row already says what ``row`` says (CSV stores text)."""
    if fmt == "json":
        return bool(before == json.loads(json.dumps(row)))
    return all(before.get(k, "") == _cell(v) for k, v in row.items())


def _cannot_write(path: Path, exc: OSError) -> OutputError:
    return OutputError(
        f"local export: cannot write {path} ({exc.strerror or exc}); fix that folder or choose another "
        "output_dir, then export again (the bundles are untouched)"
    )


def _write(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OutputError as exc:
        cause = exc.__cause__
        raise _cannot_write(path, cause if isinstance(cause, OSError) else OSError(str(exc))) from exc


def _write_if_changed(path: Path, text: str, force: bool) -> Status:
    try:
        old = path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        old = ""  # unreadable: written anew
    if old == text and not force:
        return "unchanged"
    _write(path, text)
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
    if not path.is_file():
        raise _not_ours(path, "it is not a file")
    try:
        # A byte-order mark (a spreadsheet's "CSV UTF-8") is read as such, never as a column name.
        text = decode_text(path.read_bytes(), str(path), OutputError)
    except OSError as exc:
        raise OutputError(
            f"local export: cannot read {path} ({exc.strerror}); fix its permissions or move it away"
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
        raise _not_ours(path, "it is not valid JSON") from exc
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("key") != KEY or not isinstance(rows, list):
        raise _not_ours(path, "it is not a summary table written by eval_framework")
    if not all(isinstance(r, dict) for r in rows):
        raise _not_ours(path, "some of its rows are not objects (edited by hand?)")
    return [str(c) for c in data.get("columns") or []], rows


def _not_ours(path: Path, why: str) -> OutputError:
    return OutputError(
        f"local export: cannot use {path} ({why}); move it away (it is kept as it is) or choose "
        "another output_dir"
    )
