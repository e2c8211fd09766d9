"""The spreadsheets a fake Google Sheets API holds: worksheets of typed cells, A1 ranges, and the
operations of the Sheets API v4 on them (values.get/update/append/clear and the
spreadsheets.batchUpdate requests a sheet exporter sends), with the API's rules where they
matter to a client: grid limits, atomic batches, unique sheet titles and developer-metadata ids.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any


class Refused(Exception):
    """A request the API refuses: its HTTP status, its words and its status name."""

    def __init__(self, code: int, message: str, status: str) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def invalid(message: str) -> Refused:
    return Refused(400, message, "INVALID_ARGUMENT")


@dataclass
class Worksheet:
    sheet_id: int
    title: str
    index: int
    rows: int = 1000
    cols: int = 26
    cells: dict[tuple[int, int], Any] = field(default_factory=dict)  #: (row, col) from 0: value
    metadata: list[dict[str, Any]] = field(default_factory=list)

    def properties(self) -> dict[str, Any]:
        return {
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": self.index,
            "sheetType": "GRID",
            "gridProperties": {"rowCount": self.rows, "columnCount": self.cols},
        }

    def put(self, row: int, col: int, value: Any) -> None:
        if row >= self.rows or col >= self.cols:
            raise invalid(
                f"Range ({quote(self.title)}!{a1(row, col)}) exceeds grid limits. Max rows: {self.rows}, "
                f"max columns: {self.cols}"
            )
        if value is None or value == "":
            self.cells.pop((row, col), None)
        else:
            self.cells[(row, col)] = value

    def last_row(self, cols: range | None = None) -> int:
        """The last row (from 0) holding data, in ``cols`` if given; -1 when none."""
        return max((r for r, c in self.cells if cols is None or c in cols), default=-1)

    def grid(self, area: Area) -> list[list[Any]]:
        """The values of ``area``, as the API answers them: trailing empty rows and cells left out."""
        r1 = min(area.r1 if area.r1 is not None else self.rows, self.rows)
        c1 = min(area.c1 if area.c1 is not None else self.cols, self.cols)
        out = [[self.cells.get((r, c)) for c in range(area.c0, c1)] for r in range(area.r0, r1)]
        for row in out:
            while row and row[-1] is None:
                row.pop()
        while out and not out[-1]:
            out.pop()
        return out


@dataclass
class Spreadsheet:
    spreadsheet_id: str
    title: str
    sheets: list[Worksheet]
    access: dict[str, str] = field(default_factory=dict)  #: email: "writer" or "reader"
    metadata: list[dict[str, Any]] = field(default_factory=list)  #: spreadsheet-level

    def sheet(self, title: str) -> Worksheet:
        for sheet in self.sheets:
            if sheet.title.casefold() == title.casefold():
                return sheet
        raise invalid(f"Unable to parse range: {quote(title)}")

    def by_id(self, sheet_id: Any) -> Worksheet:
        for sheet in self.sheets:
            if sheet.sheet_id == sheet_id:
                return sheet
        raise invalid(f"No grid with id: {sheet_id}")

    def resource(self, url: str) -> dict[str, Any]:
        """``spreadsheets.get`` without grid data."""
        sheets = []
        for sheet in self.sheets:
            entry: dict[str, Any] = {"properties": sheet.properties()}
            if sheet.metadata:
                entry["developerMetadata"] = copy.deepcopy(sheet.metadata)
            sheets.append(entry)
        body: dict[str, Any] = {
            "spreadsheetId": self.spreadsheet_id,
            "properties": {
                "title": self.title,
                "locale": "en_US",
                "autoRecalc": "ON_CHANGE",
                "timeZone": "Etc/GMT",
            },
            "sheets": sheets,
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}/edit",
        }
        if self.metadata:
            body["developerMetadata"] = copy.deepcopy(self.metadata)
        return body

    def metadata_ids(self) -> set[int]:
        return {m["metadataId"] for m in self.metadata} | {
            m["metadataId"] for s in self.sheets for m in s.metadata
        }


# -- A1 notation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Area:
    title: str | None
    r0: int = 0
    c0: int = 0
    r1: int | None = None  #: exclusive; None: to the end
    c1: int | None = None


def quote(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def column_name(col: int) -> str:
    name = ""
    col += 1
    while col:
        col, rest = divmod(col - 1, 26)
        name = chr(65 + rest) + name
    return name


def a1(row: int, col: int) -> str:
    return f"{column_name(col)}{row + 1}"


_CELL = re.compile(r"^([A-Z]*)(\d*)$")


def _point(text: str) -> tuple[int | None, int | None]:
    match = _CELL.match(text.upper())
    if not match or not text:
        raise invalid(f"Unable to parse range: {text}")
    letters, digits = match.groups()
    col = None
    if letters:
        col = 0
        for ch in letters:
            col = col * 26 + (ord(ch) - 64)
        col -= 1
    return (int(digits) - 1 if digits else None), col


def parse_range(text: str, titles: tuple[str, ...] = ()) -> Area:
    """``'My sheet'!A1:C3``, ``Sheet1``, ``'it''s'!1:1``, ``Sheet1!A:C`` as an area (``titles``: the
    worksheets, for a bare name that could also be a cell, as the API decides it)."""
    title, cells = None, text
    if text.startswith("'"):
        end = 1
        while True:
            end = text.index("'", end)
            if text[end : end + 2] == "''":
                end += 2
                continue
            break
        title, cells = text[1:end].replace("''", "'"), text[end + 1 :].lstrip("!")
    elif "!" in text:
        title, cells = text.split("!", 1)
    elif text.casefold() in {t.casefold() for t in titles} or not _CELL.match(text.upper().split(":")[0]):
        title, cells = text, ""
    if not cells:
        return Area(title)
    first, _, last = cells.partition(":")
    r0, c0 = _point(first)
    r1, c1 = _point(last) if last else (r0, c0)
    return Area(
        title,
        r0 or 0,
        c0 or 0,
        None if r1 is None else r1 + 1,
        None if c1 is None else c1 + 1,
    )


def area_a1(sheet: Worksheet, r0: int, c0: int, rows: int, cols: int) -> str:
    cols = max(cols, 1)
    return f"{quote(sheet.title)}!{a1(r0, c0)}:{a1(r0 + max(rows, 1) - 1, c0 + cols - 1)}"


# -- values ----------------------------------------------------------------------------------------


def entered(value: Any, option: str) -> Any:
    """A value as ``valueInputOption`` stores it: RAW as given, USER_ENTERED parsed as typed."""
    if option not in ("RAW", "USER_ENTERED"):
        raise invalid(f"Invalid valueInputOption: {option!r}")
    if option == "RAW" or not isinstance(value, str):
        return value
    if value.startswith("'"):
        return value[1:]
    if value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE"
    try:
        number = float(value.replace(",", ""))
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def rendered(value: Any, option: str) -> Any:
    """A stored value as ``valueRenderOption`` answers it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value if option == "UNFORMATTED_VALUE" else str(value).upper()
    if isinstance(value, int | float):
        number = int(value) if float(value).is_integer() else value
        if option == "UNFORMATTED_VALUE":
            return number
        return str(number) if isinstance(number, int) else f"{number:.10g}"
    return value


def write_values(sheet: Worksheet, r0: int, c0: int, values: list[list[Any]], option: str) -> tuple[int, int]:
    """Rows of values written from (r0, c0); a null is skipped, as the API does. (rows, cols)."""
    for r, row in enumerate(values):
        for c, value in enumerate(row):
            if value is not None:
                sheet.put(r0 + r, c0 + c, entered(value, option))
    return len(values), max((len(r) for r in values), default=0)


# -- spreadsheets.batchUpdate ------------------------------------------------------------------------


def batch_update(book: Spreadsheet, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every request applied to a copy, the copy kept only if all succeed (the API's atomicity)."""
    work = copy.deepcopy(book)
    replies = []
    for i, request in enumerate(requests):
        if len(request) != 1:
            raise invalid(f"Invalid requests[{i}]: exactly one kind of request per entry")
        ((kind, body),) = request.items()
        handler = _REQUESTS.get(kind)
        if handler is None:
            raise invalid(f"Invalid JSON payload received. Unknown name \"{kind}\" at 'requests[{i}]'")
        try:
            replies.append(handler(work, body))
        except Refused as exc:
            raise Refused(exc.code, f"Invalid requests[{i}].{kind}: {exc.message}", exc.status) from exc
    book.sheets, book.metadata = work.sheets, work.metadata
    return replies


def _add_sheet(book: Spreadsheet, body: dict[str, Any]) -> dict[str, Any]:
    props = body.get("properties") or {}
    title = props.get("title") or f"Sheet{len(book.sheets) + 1}"
    if any(s.title.casefold() == title.casefold() for s in book.sheets):
        raise invalid(f'A sheet with the name "{title}" already exists. Please enter another name.')
    sheet_id = props.get("sheetId", max((s.sheet_id for s in book.sheets), default=0) + 1_000_001)
    grid = props.get("gridProperties") or {}
    sheet = Worksheet(
        sheet_id, title, len(book.sheets), grid.get("rowCount", 1000), grid.get("columnCount", 26)
    )
    book.sheets.append(sheet)
    return {"addSheet": {"properties": sheet.properties()}}


def _cell_value(data: dict[str, Any], fields: str) -> tuple[bool, Any]:
    """(whether the cell's value is written, the value) for a CellData under a fields mask."""
    if fields not in ("*", "userEnteredValue") and "userEnteredValue" not in fields.split(","):
        return False, None
    value = data.get("userEnteredValue")
    if value is None:
        return True, None
    ((kind, inner),) = value.items()
    if kind not in ("numberValue", "stringValue", "boolValue", "formulaValue"):
        raise invalid(f"Unknown ExtendedValue {kind}")
    return True, inner


def _write_rows(sheet: Worksheet, r0: int, c0: int, rows: list[dict[str, Any]], fields: str) -> None:
    if not fields:
        raise invalid("At least one field must be specified in 'fields'.")
    for r, row in enumerate(rows):
        for c, data in enumerate(row.get("values") or []):
            written, value = _cell_value(data, fields)
            if written:
                sheet.put(r0 + r, c0 + c, value)


def _update_cells(book: Spreadsheet, body: dict[str, Any]) -> dict[str, Any]:
    start = body.get("start") or {}
    grid_range = body.get("range")
    if grid_range is not None:
        start = {"sheetId": grid_range.get("sheetId"), "rowIndex": grid_range.get("startRowIndex", 0),
                 "columnIndex": grid_range.get("startColumnIndex", 0)}  # fmt: skip
    sheet = book.by_id(start.get("sheetId", 0))
    _write_rows(sheet, start.get("rowIndex", 0), start.get("columnIndex", 0), body.get("rows") or [],
                body.get("fields", ""))  # fmt: skip
    return {}


def _append_cells(book: Spreadsheet, body: dict[str, Any]) -> dict[str, Any]:
    sheet = book.by_id(body.get("sheetId"))
    rows = body.get("rows") or []
    at = sheet.last_row() + 1
    sheet.rows = max(sheet.rows, at + len(rows))  # rows are inserted as needed; columns are not
    _write_rows(sheet, at, 0, rows, body.get("fields", ""))
    return {}


def _append_dimension(book: Spreadsheet, body: dict[str, Any]) -> dict[str, Any]:
    sheet = book.by_id(body.get("sheetId"))
    length = int(body.get("length", 0))
    if length < 1:
        raise invalid("length must be at least 1")
    if body.get("dimension") == "COLUMNS":
        sheet.cols += length
    elif body.get("dimension") == "ROWS":
        sheet.rows += length
    else:
        raise invalid(f"Invalid dimension: {body.get('dimension')}")
    return {}


def _create_metadata(book: Spreadsheet, body: dict[str, Any]) -> dict[str, Any]:
    metadata = dict(body.get("developerMetadata") or {})
    if not metadata.get("metadataKey"):
        raise invalid("Developer metadata must have a key specified.")
    if metadata.get("visibility") not in ("DOCUMENT", "PROJECT"):
        raise invalid("Developer metadata must have a visibility specified.")
    given = metadata.get("metadataId")
    if given is not None and (not isinstance(given, int) or given <= 0):
        raise invalid(f"Invalid metadataId: {given}")
    if given in book.metadata_ids():
        raise invalid(f"Developer metadata with ID {given} already exists.")
    metadata["metadataId"] = given or max(book.metadata_ids(), default=0) + 1
    location = metadata.get("location") or {}
    if "sheetId" in location:
        book.by_id(location["sheetId"]).metadata.append(metadata)
        metadata["location"] = {"locationType": "SHEET", "sheetId": location["sheetId"]}
    elif location.get("spreadsheet"):
        book.metadata.append(metadata)
        metadata["location"] = {"locationType": "SPREADSHEET", "spreadsheet": True}
    else:
        raise invalid("This fake holds sheet- and spreadsheet-level developer metadata only.")
    return {"createDeveloperMetadata": {"developerMetadata": copy.deepcopy(metadata)}}


_REQUESTS = {
    "addSheet": _add_sheet,
    "updateCells": _update_cells,
    "appendCells": _append_cells,
    "appendDimension": _append_dimension,
    "createDeveloperMetadata": _create_metadata,
}
