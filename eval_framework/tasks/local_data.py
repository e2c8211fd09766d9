"""Read local data files (JSONL, JSON, CSV, Parquet) into rows: one dict per row, or a clear error."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from eval_framework.errors import TaskError, brief, missing_extra
from eval_framework.textfiles import read_text

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def _kind(value: Any) -> str:
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


class WrittenNumber(float):
    """A JSON decimal number that remembers how the data wrote it: ``7.50`` reaches a prompt or an
    answer as ``7.50``, not Python's ``7.5``."""

    text: str

    def __new__(cls, text: str) -> WrittenNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in pairs:
        if key in row:
            raise _DuplicateKey(key)
        row[key] = value
    return row


def _loads(text: str, where: str) -> Any:
    """JSON text as data, or a TaskError naming ``where``: a key written twice in one object
    (JSON keeps the last one silently) and nesting too deep to read are refused too."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_float=WrittenNumber)
    except _DuplicateKey as exc:
        raise TaskError(f"{where} writes the key {exc.args[0]!r} twice in one object; keep one") from exc
    except RecursionError as exc:
        raise TaskError(f"{where} is nested too deeply to read; fix the data") from exc
    except json.JSONDecodeError as exc:
        at = f" at line {exc.lineno}" if "\n" in text.strip() else ""
        raise TaskError(f"{where} is not valid JSON ({exc.msg}{at}); fix it") from exc


def _check_unicode(value: Any, where: str, text: str) -> None:
    """JSON may escape half of a UTF-16 pair (``"\\ud83d"``); such text cannot be written to a
    results file or shown to a model, so it is refused where it is."""
    if "\\ud" not in text.lower():  # only \uD800-\uDFFF escapes make surrogates
        return
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(exc.object[exc.start])
        raise TaskError(
            f"{where} holds text that is not valid Unicode (a lone surrogate \\u{code:04x}, half "
            "of a character pair); fix the text: write the whole character or its pair of escapes"
        ) from exc


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(read_text(path, f"data file {path}", TaskError).splitlines(), 1):
        if not line.strip():
            continue
        row = _loads(line, f"{path}:{number}")
        if not isinstance(row, dict):
            raise TaskError(
                f"{path}:{number} holds {_kind(row)}, not a JSON object; fix the line: each line must be "
                'one row like {"question": ..., "answer": ...}'
            )
        _check_unicode(row, f"{path}:{number}", line)
        rows.append(row)
    return rows


def _json_rows(path: Path) -> list[dict[str, Any]]:
    text = read_text(path, f"data file {path}", TaskError)
    data = _loads(text, str(path))
    if not isinstance(data, list):
        raise TaskError(f"{path} holds {_kind(data)}; fix the file: it must hold a JSON list of row objects")
    for number, row in enumerate(data):
        if not isinstance(row, dict):
            raise TaskError(
                f"{path}: item {number} of the list is {_kind(row)}, not a row object; fix the file"
            )
        _check_unicode(row, f"{path}: item {number} of the list", text)
    return data


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    text = read_text(path, f"data file {path}", TaskError)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = list(reader.fieldnames or [])
        rows = list(reader)
    except csv.Error as exc:
        raise TaskError(f"{path} is not valid CSV ({brief(exc)}); fix the file") from exc
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:  # the last column of a name would silently win
        raise TaskError(f"{path}:1 names the column {twice[0]!r} twice; give each column its own name")
    for number, row in enumerate(rows, 2):
        if None in row:  # more cells than header columns
            raise TaskError(f"{path}:{number} has more cells than the header has columns; fix the row")
    return rows


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise missing_extra("pyarrow", "datasets", TaskError) from exc
    try:
        return list(pq.read_table(path).to_pylist())
    except (pa.ArrowException, OSError) as exc:
        raise TaskError(f"{path} is not a readable Parquet file ({brief(exc)}); check the file") from exc


_READERS = {".jsonl": _jsonl_rows, ".json": _json_rows, ".csv": _csv_rows, ".parquet": _parquet_rows}


def read_rows(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        raise TaskError(
            f"data file {path} is a directory; use the path of a .jsonl, .json, .csv or .parquet file"
        )
    if not path.is_file():
        raise TaskError(f"data file {path} does not exist; check the path in the task definition")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise TaskError(
            f"data file {path} has unsupported type {path.suffix!r}; use one of {', '.join(SUFFIXES)}"
        )
    return reader(path)


def find_split_file(directory: Path, split: str) -> Path | None:
    """``<dir>/<split>.<jsonl|json|csv|parquet>`` if present."""
    for suffix in SUFFIXES:
        candidate = directory / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    return None
