"""The ``gsheets`` destination: one row per evaluation in a Google Sheets worksheet, through gspread.

The row is the local destination's table row (``local.summary_row``), upserted by its
``evaluation_hash`` column with one atomic ``spreadsheets.batchUpdate`` per export (see
``gsheets_table``): exporting an evaluation again updates its row in place, another evaluation
is appended, a metric new to the worksheet becomes header columns after the existing ones. Rows,
columns and cell formats of a user's own are never written; nothing rewrites the whole sheet.
The connection, the key and the words for failures are in ``gsheets_api``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eval_framework.errors import ConfigError, EvalFrameworkError, ExportError
from eval_framework.results import Bundle
from eval_framework.sinks import gsheets_api as api
from eval_framework.sinks import gsheets_signin
from eval_framework.sinks.base import Exported, Status
from eval_framework.sinks.gsheets_table import KEY, Sheet, Table, plan, quoted
from eval_framework.sinks.local import summary_row

if TYPE_CHECKING:
    from gspread import Client

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_WORKSHEET = "evaluations"
#: Batches planned again when another exporter extended the header at the same moment.
CONFLICT_ATTEMPTS = 4
_ID_IN_URL = re.compile(r"/spreadsheets/d/([A-Za-z0-9_-]+)")


class SheetsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service_account_file: Path | None = Field(
        None, description="the service account's JSON key (default: GOOGLE_APPLICATION_CREDENTIALS)"
    )
    spreadsheet_id: str | None = Field(None, description="the spreadsheet's id, or its URL")
    spreadsheet_name: str | None = Field(None, description="the spreadsheet's exact name, found in Drive")
    worksheet: str = Field(DEFAULT_WORKSHEET, min_length=1, max_length=100)
    log_metrics: tuple[str, ...] = Field((), description="export metrics whose names contain these")

    @field_validator("service_account_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Absolute: the retry command printed after a failure works from any directory."""
        return value.expanduser().absolute() if value is not None else None

    @field_validator("spreadsheet_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        found = _ID_IN_URL.search(value)
        value = found.group(1) if found else value.strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]+", value):
            raise ValueError("spreadsheet_id is the part of the spreadsheet's URL after /d/ (or the URL)")
        return value

    @field_validator("spreadsheet_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and ('"' in value or "\\" in value or not value.strip()):
            raise ValueError(
                "a spreadsheet_name with a double quote or backslash cannot be looked up; give spreadsheet_id"
            )
        return value

    @model_validator(mode="after")
    def _one_spreadsheet(self) -> SheetsConfig:
        if (self.spreadsheet_id is None) == (self.spreadsheet_name is None):
            raise ValueError("give exactly one of spreadsheet_id and spreadsheet_name")
        return self


@dataclass
class _Target:
    client: Client
    account: api.ServiceAccount
    spreadsheet_id: str

    @property
    def http(self) -> Any:
        return self.client.http_client


class SheetsSink:
    """Rows in a Google Sheets worksheet (see the module docstring and docs/exporters.md)."""

    name: ClassVar[str] = "gsheets"
    Config: ClassVar[type[BaseModel]] = SheetsConfig

    def __init__(self, config: SheetsConfig) -> None:
        self.config = config
        self._target: _Target | None = None

    # -- before anything is sent --------------------------------------------------------------

    def preflight(self) -> None:
        """The key, a token, the spreadsheet, the right to edit it, and the worksheet (found, or
        to be created at the first export), all checked; nothing is written."""
        api.require_extra()
        account = api.load_service_account(self.config.service_account_file)
        client = api.connect(account)
        self._checked(account, "signing in", lambda: gsheets_signin.fetch_token(client))
        target = _Target(client, account, self._spreadsheet_id(client, account))
        metadata = self._checked(account, f"opening {self._what(target)}", lambda: self._metadata(target))
        self._check_can_edit(target)
        sheet = _find_sheet(metadata, self.config.worksheet)
        if sheet is not None:
            table = self._checked(
                account, f"reading {self._where(target)}", lambda: self._table(target, sheet)
            )
            if table.foreign():
                raise ConfigError(
                    f"gsheets export: {self._where(target)} holds other data (its first row has no "
                    f"{KEY} column); choose another worksheet (a new one is created), or clear that one"
                )
        self._target = target

    def _spreadsheet_id(self, client: Client, account: api.ServiceAccount) -> str:
        if self.config.spreadsheet_id is not None:
            return self.config.spreadsheet_id
        name = str(self.config.spreadsheet_name)
        files = self._checked(
            account,
            f"finding the spreadsheet named {name!r} in Drive",
            lambda: client.list_spreadsheet_files(name),
        )
        found = [f for f in files if f.get("name") == name]
        if not found:
            raise ConfigError(
                f"gsheets export: no spreadsheet named {name!r} is shared with the service account "
                f"{account.email}; share it with that address as Editor, check the exact name, or give "
                "spreadsheet_id"
            )
        if len(found) > 1:
            ids = ", ".join(str(f.get("id")) for f in found)
            raise ConfigError(
                f"gsheets export: {len(found)} spreadsheets named {name!r} are shared with "
                f"{account.email} ({ids}); give spreadsheet_id to say which"
            )
        return str(found[0]["id"])

    def _check_can_edit(self, target: _Target) -> None:
        """A spreadsheet shared for viewing only is said now, not after the first write. Drive
        answers this; if it cannot (its API not enabled), the first write says it instead."""
        url = f"{api.GOOGLE_BASES[1]}/drive/v3/files/{target.spreadsheet_id}"
        params = {"fields": "capabilities/canEdit", "supportsAllDrives": True}
        try:
            capabilities = target.http.request("get", url, params=params).json().get("capabilities") or {}
        except api.api_errors() as exc:
            log.debug("cannot ask Drive whether the spreadsheet is editable: %s", exc)
            return
        if capabilities.get("canEdit") is False:
            raise ConfigError(
                f"gsheets export: the service account {target.account.email} may only view "
                f"{self._what(target)}; share it with that address as Editor"
            )

    # -- exporting -------------------------------------------------------------------------

    def publish(self, bundle: Bundle, force: bool = False) -> Exported:
        target = self._ready()
        row = summary_row(bundle, self.config.log_metrics)
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                done = self._upsert(target, row, force)
            except _Conflict as conflict:
                if attempt < CONFLICT_ATTEMPTS:
                    log.info(
                        "the header of %s changed during this export; planning again", self._where(target)
                    )
                    continue
                why, hint = api.explain(conflict.error, target.account)
                raise ExportError(
                    f"writing {self._where(target)}: {why} (tried {attempt} times; another export may be "
                    "adding columns at the same moment)",
                    sink=self.name,
                    hint=hint,
                ) from conflict.error
            except api.api_errors() as exc:
                why, hint = api.explain(exc, target.account)
                raise ExportError(f"writing {self._where(target)}: {why}", sink=self.name, hint=hint) from exc
            return Exported(self.name, bundle.dir, *done)
        raise AssertionError("unreachable")

    def _upsert(self, target: _Target, row: dict[str, Any], force: bool) -> tuple[Status, str]:
        """Read the worksheet, plan the row's batch, send it: (status, the worksheet's URL)."""
        from gspread.exceptions import APIError

        sheet = self._sheet(target, create=True)
        assert sheet is not None
        table = self._table(target, sheet)
        if table.foreign():
            raise ExportError(
                f"{self._where(target)} holds other data now (its first row has no {KEY} column)",
                sink=self.name,
                hint="choose another worksheet, or clear that one",
            )
        batch = plan(sheet, table, row, force)
        if batch.requests:
            try:
                target.http.batch_update(target.spreadsheet_id, {"requests": batch.requests})
            except APIError as exc:
                if batch.guarded and exc.code == 400:  # most likely another header extension won
                    raise _Conflict(exc) from exc
                raise
        if len(batch.rows) > 1:
            log.warning("%s holds evaluation %s in rows %s; all were updated: delete the extra ones",
                        self._where(target), str(row[KEY])[:12], batch.rows)  # fmt: skip
        return batch.status, self._url(target, sheet)

    def preview(self, bundle: Bundle) -> Status:
        """What ``publish`` would do, writing nothing (a missing worksheet: created)."""
        target = self._ready()
        row = summary_row(bundle, self.config.log_metrics)
        sheet = self._checked(target.account, f"reading {self._where(target)}", lambda: self._sheet(target))
        if sheet is None:
            return "created"
        table = self._checked(
            target.account, f"reading {self._where(target)}", lambda: self._table(target, sheet)
        )
        return plan(sheet, table, row).status

    # -- reading -----------------------------------------------------------------------------

    def _ready(self) -> _Target:
        if self._target is None:
            self.preflight()
        assert self._target is not None
        return self._target

    def _metadata(self, target: _Target) -> dict[str, Any]:
        result: dict[str, Any] = target.http.fetch_sheet_metadata(target.spreadsheet_id)
        return result

    def _sheet(self, target: _Target, create: bool = False) -> Sheet | None:
        """The worksheet's properties (read afresh: another exporter may have changed them);
        created first when missing and ``create``."""
        metadata = self._metadata(target)
        sheet = _find_sheet(metadata, self.config.worksheet)
        if sheet is not None or not create:
            return sheet
        from gspread.exceptions import APIError

        body = {"requests": [{"addSheet": {"properties": {"title": self.config.worksheet}}}]}
        try:
            reply = target.http.batch_update(target.spreadsheet_id, body)
        except APIError as exc:  # another exporter created it a moment ago: that one is used
            sheet = _find_sheet(self._metadata(target), self.config.worksheet) if exc.code == 400 else None
            if sheet is None:
                raise
            return sheet
        props = reply["replies"][0]["addSheet"]["properties"]
        return _sheet_of(props, _metadata_ids(metadata))

    def _table(self, target: _Target, sheet: Sheet) -> Table:
        params = {"valueRenderOption": "UNFORMATTED_VALUE", "majorDimension": "ROWS"}
        answer = target.http.values_get(target.spreadsheet_id, quoted(sheet.title), params=params)
        return Table.of(answer.get("values") or [])

    def _checked(self, account: api.ServiceAccount, doing: str, fn: Callable[[], T]) -> T:
        """``fn()``, a failure of Google's said as a ConfigError (the checks before exporting)."""
        try:
            return fn()
        except EvalFrameworkError:
            raise
        except api.api_errors() as exc:
            why, hint = api.explain(exc, account)
            raise ConfigError(f"gsheets export: {doing} failed: {why}; {hint}") from exc

    def _what(self, target: _Target) -> str:
        name = self.config.spreadsheet_name
        return (
            f"spreadsheet {name!r} ({target.spreadsheet_id})"
            if name
            else f"spreadsheet {target.spreadsheet_id}"
        )

    def _where(self, target: _Target) -> str:
        return f"worksheet {self.config.worksheet!r} of {self._what(target)}"

    def _url(self, target: _Target, sheet: Sheet) -> str:
        return f"https://docs.google.com/spreadsheets/d/{target.spreadsheet_id}/edit#gid={sheet.sheet_id}"


class _Conflict(Exception):
    """A guarded batch was refused: planned again on the worksheet as it now is."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _metadata_ids(metadata: dict[str, Any]) -> frozenset[int]:
    """Every developer-metadata id the spreadsheet shows (its own and its worksheets')."""
    entries = list(metadata.get("developerMetadata") or [])
    for sheet in metadata.get("sheets") or []:
        entries += sheet.get("developerMetadata") or []
    return frozenset(int(m["metadataId"]) for m in entries if "metadataId" in m)


def _find_sheet(metadata: dict[str, Any], title: str) -> Sheet | None:
    """The worksheet named ``title`` (Sheets names are unique regardless of case)."""
    found = None
    for entry in metadata.get("sheets") or []:
        props = entry.get("properties") or {}
        name = str(props.get("title", ""))
        if name == title or (found is None and name.casefold() == title.casefold()):
            found = props
    return None if found is None else _sheet_of(found, _metadata_ids(metadata))


def _sheet_of(props: dict[str, Any], ids: frozenset[int]) -> Sheet:
    grid = props.get("gridProperties") or {}
    return Sheet(
        int(props["sheetId"]),
        str(props["title"]),
        int(grid.get("rowCount", 1000)),
        int(grid.get("columnCount", 26)),
        ids,
    )
