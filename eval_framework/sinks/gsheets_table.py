"""The ``gsheets`` destination's table logic, without any I/O: a worksheet's values read as a
header and rows, and one evaluation's row turned into the one ``spreadsheets.batchUpdate``
request that upserts it.

Why ``spreadsheets.batchUpdate`` (``updateCells`` / ``appendCells``) rather than
``values.batchUpdate`` plus ``values.append``: one request covers every case (a new header
column and a new row at once), the API applies it atomically (all of it or nothing), and cells
are written as typed values (``numberValue``, ``stringValue``): numbers stay numbers and text is
never parsed as a formula or a date, which is what ``valueInputOption=RAW`` would do.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eval_framework.sinks.base import Status

#: The key column; rows are upserted by it (the same as the local destination's table).
KEY = "evaluation_hash"
#: Developer metadata written with a header extension (see ``header_guard``).
GUARD_KEY = "eval_framework.header"
#: Only these cell properties are written: formats, notes and validation a user set stay.
FIELDS = "userEnteredValue"


@dataclass(frozen=True)
class Sheet:
    """A worksheet's properties, as ``spreadsheets.get`` gives them."""

    sheet_id: int
    title: str
    row_count: int
    column_count: int
    #: developer metadata ids of the whole spreadsheet (they are unique across it)
    metadata_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Table:
    """A worksheet's values: row 1 is the header, the rows below are evaluations (or a user's)."""

    header: list[str]
    rows: list[list[Any]]

    @classmethod
    def of(cls, values: Sequence[Sequence[Any]]) -> Table:
        if not values:
            return cls([], [])
        return cls([str(v) for v in values[0]], [list(r) for r in values[1:]])

    def foreign(self) -> bool:
        """Whether the worksheet holds something else than such a table (never written over)."""
        return bool(self.header or any(any(v not in (None, "") for v in r) for r in self.rows)) and (
            KEY not in self.header
        )

    def columns(self) -> dict[str, int]:
        """Column index by name; a repeated name is its first column."""
        found: dict[str, int] = {}
        for index, name in enumerate(self.header):
            if name and name not in found:
                found[name] = index
        return found

    def rows_of(self, key: str) -> list[int]:
        """The indices (into ``rows``) of the rows holding ``key`` in the key column."""
        at = self.columns().get(KEY)
        if at is None:
            return []
        return [i for i, row in enumerate(self.rows) if at < len(row) and row[at] == key]


@dataclass(frozen=True)
class Plan:
    """What an export does: its status and the requests of its one batch (none: unchanged)."""

    status: Status
    requests: list[dict[str, Any]] = field(default_factory=list)
    new_columns: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  #: sheet rows (1-based) updated in place
    guarded: bool = False  #: the batch carries a header guard (a conflict is retried)


def cell(value: Any) -> dict[str, Any]:
    """A value as a typed cell; None clears the cell (a missing value, never the text "None")."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"userEnteredValue": {"boolValue": value}}
    if isinstance(value, int | float) and math.isfinite(value):
        return {"userEnteredValue": {"numberValue": value}}
    return {"userEnteredValue": {"stringValue": str(value)}}


def same(stored: Any, value: Any) -> bool:
    """Whether a cell read back (``UNFORMATTED_VALUE``) holds ``value`` as ``cell`` writes it."""
    if value is None:
        return stored in (None, "")
    if isinstance(value, bool) or isinstance(stored, bool):
        return bool(stored is value)
    if isinstance(value, int | float) and math.isfinite(value):
        return isinstance(stored, int | float) and float(stored) == float(value)
    return bool(stored == str(value))


def header_guard(sheet: Sheet, header: Sequence[str]) -> int:
    """The developer-metadata id a header extension from ``header`` creates. Two exporters that
    extend the same header at once compute the same id; the API refuses the second id (ids are
    unique in a spreadsheet), so the second batch is refused whole and is planned again on the
    header as it now is. Ids already taken (a header that came back to an earlier state) are
    skipped in a fixed order, so concurrent exporters still agree on the id."""
    n = 0
    while True:
        text = json.dumps([sheet.sheet_id, list(header), n])
        candidate = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % (2**31 - 2) + 1
        if candidate not in sheet.metadata_ids:
            return candidate
        n += 1


def plan(sheet: Sheet, table: Table, row: Mapping[str, Any], force: bool = False) -> Plan:
    """The batch that upserts ``row`` (keyed by ``KEY``): new header columns after the existing
    ones, the row updated in place where it is (only the cells of its own columns), or appended."""
    columns = table.columns()
    new = [name for name in row if name not in columns]
    for offset, name in enumerate(new):
        columns[name] = len(table.header) + offset
    found = table.rows_of(str(row[KEY]))
    unchanged = bool(found) and not new and all(_same_row(table.rows[i], row, columns) for i in found)
    if unchanged and not force:
        return Plan("unchanged")
    requests: list[dict[str, Any]] = []
    width = max(columns.values()) + 1
    if width > sheet.column_count:
        requests.append(_append_columns(sheet, width - sheet.column_count))
    if new:
        requests.append(_guard(sheet, table.header, len(table.header) + len(new)))
        requests.append(
            _update(sheet, 0, len(table.header), [{"userEnteredValue": {"stringValue": n}} for n in new])
        )
    if found:
        for i in found:
            requests += _row_updates(sheet, i + 1, row, columns)
    else:
        cells: list[dict[str, Any]] = [{} for _ in range(width)]
        for name, value in row.items():
            cells[columns[name]] = cell(value)
        requests.append(
            {"appendCells": {"sheetId": sheet.sheet_id, "rows": [{"values": cells}], "fields": FIELDS}}
        )
    return Plan("updated" if found else "created", requests, new, [i + 2 for i in found], guarded=bool(new))


def _same_row(stored: list[Any], row: Mapping[str, Any], columns: Mapping[str, int]) -> bool:
    return all(same(stored[columns[n]] if columns[n] < len(stored) else None, v) for n, v in row.items())


def _row_updates(
    sheet: Sheet, row_index: int, row: Mapping[str, Any], columns: Mapping[str, int]
) -> list[dict[str, Any]]:
    """One ``updateCells`` per run of adjacent columns of ``row``: a user's own column between
    two of ours is never written."""
    by_column = sorted((columns[name], cell(value)) for name, value in row.items())
    runs: list[tuple[int, list[dict[str, Any]]]] = []
    for index, data in by_column:
        if runs and runs[-1][0] + len(runs[-1][1]) == index:
            runs[-1][1].append(data)
        else:
            runs.append((index, [data]))
    return [_update(sheet, row_index, start, cells) for start, cells in runs]


def _update(sheet: Sheet, row_index: int, column_index: int, cells: list[dict[str, Any]]) -> dict[str, Any]:
    start = {"sheetId": sheet.sheet_id, "rowIndex": row_index, "columnIndex": column_index}
    return {"updateCells": {"start": start, "rows": [{"values": cells}], "fields": FIELDS}}


def _append_columns(sheet: Sheet, count: int) -> dict[str, Any]:
    return {"appendDimension": {"sheetId": sheet.sheet_id, "dimension": "COLUMNS", "length": count}}


def _guard(sheet: Sheet, header: Sequence[str], width: int) -> dict[str, Any]:
    metadata = {
        "metadataId": header_guard(sheet, header),
        "metadataKey": GUARD_KEY,
        "metadataValue": str(width),
        "location": {"sheetId": sheet.sheet_id},
        "visibility": "DOCUMENT",
    }
    return {"createDeveloperMetadata": {"developerMetadata": metadata}}


def quoted(title: str) -> str:
    """A worksheet title as an A1 range (``'it''s'``)."""
    return "'" + title.replace("'", "''") + "'"
