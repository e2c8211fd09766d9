"""Reading samples.jsonl line by line: each valid row kept as stored, each bad line with why.

A row is checked in the current schema (an older row migrated first); a torn last line (the part
of a row a killed process did not finish) is not a line yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eval_framework.bundle_io import in_the_way
from eval_framework.bundle_migrate import TooNew, upgraded
from eval_framework.bundle_schema import SampleRow, problem
from eval_framework.errors import OutputError


@dataclass(frozen=True)
class SampleLine:
    """A valid samples.jsonl line and where it is."""

    number: int
    row: dict[str, Any]


@dataclass(frozen=True)
class BadLine:
    number: int
    reason: str
    text: str


@dataclass
class SampleScan:
    rows: list[SampleLine] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


def check_row(data: Any) -> str | None:
    """Why a parsed samples.jsonl line is not a sample row, or None when it is one."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not a row object"
    try:
        SampleRow.model_validate(upgraded(data, "row"))
    except TooNew as exc:
        return str(exc)
    except ValidationError as exc:
        return problem(exc)
    return None


def scan_lines(path: Path) -> SampleScan:
    """Every complete line of ``path``, valid or not."""
    scan = SampleScan()
    try:
        data = path.read_bytes()
    except IsADirectoryError as exc:
        raise in_the_way(path, exc) from exc
    except OSError as exc:
        raise OutputError(f"cannot read {path}: {exc.strerror}; check its permissions") from exc
    end = data.rfind(b"\n") + 1
    for number, raw in enumerate(data[:end].splitlines(), 1):
        if not raw.strip():
            continue
        try:
            parsed = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            reason: str | None = "not valid JSON"
        else:
            reason = check_row(parsed)
        text = raw.decode("utf-8", errors="replace")
        if reason is None:
            scan.rows.append(SampleLine(number, parsed))
        else:
            scan.bad.append(BadLine(number, reason, text))
    return scan
