"""A Google Sheets API (v4), the part of Drive v3 gspread uses, and an OAuth2 token endpoint, on
127.0.0.1, for gspread's real client and google-auth's real service-account sign-in.

Point a client at it with ``EVAL_FRAMEWORK_SHEETS_API_URL=<fake.url>`` (Sheets and Drive paths are
kept: ``/v4/spreadsheets/...``, ``/drive/v3/files``) and a service-account key whose ``token_uri``
is ``<fake.url>/token`` (``FakeSheets.key_file`` writes one). The token endpoint verifies the
signed JWT with the account's public key, as Google does. Requests and answers have the real
API's shapes (``spreadsheets.get`` with ``sheets[].properties``, ``values.get``/``batchGet``,
``values.batchUpdate``, ``values.append`` with ``updates.updatedRange``, ``spreadsheets.batchUpdate``,
Drive ``files.list``/``files.get``), its errors are ``{"error": {"code", "message", "status"}}``.
Cells are held in memory, typed (``FakeSheets.values`` reads them back exactly as stored).
Every request is recorded by kind (``count``, ``writes``); ``fail`` switches on an error for a
kind of request, ``hang`` makes one never answer.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.loopback import answer_json, loopback_server, read_body
from tests.fakes.sheets_grid import (
    Refused,
    Spreadsheet,
    Worksheet,
    area_a1,
    batch_update,
    invalid,
    parse_range,
    quote,
    rendered,
    write_values,
)

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
MESSAGES = {
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' "
    "of service 'sheets.googleapis.com' for consumer 'project_number:1234'.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}
WRITES = frozenset(
    {
        "spreadsheets.batchUpdate",
        "values.batchUpdate",
        "values.append",
        "values.update",
        "values.clear",
        "values.batchClear",
    }
)
SHEETS_MIME = "application/vnd.google-apps.spreadsheet"

_ROUTES = [  # (method, pattern on the raw path, kind)
    ("POST", r"/token", "token"),
    ("GET", r"/v4/spreadsheets/(?P<id>[^/:]+)", "spreadsheets.get"),
    ("POST", r"/v4/spreadsheets/(?P<id>[^/:]+):batchUpdate", "spreadsheets.batchUpdate"),
    ("GET", r"/v4/spreadsheets/(?P<id>[^/:]+)/values:batchGet", "values.batchGet"),
    ("POST", r"/v4/spreadsheets/(?P<id>[^/:]+)/values:batchUpdate", "values.batchUpdate"),
    ("POST", r"/v4/spreadsheets/(?P<id>[^/:]+)/values:batchClear", "values.batchClear"),
    ("POST", r"/v4/spreadsheets/(?P<id>[^/:]+)/values/(?P<range>[^/:]+):append", "values.append"),
    ("POST", r"/v4/spreadsheets/(?P<id>[^/:]+)/values/(?P<range>[^/:]+):clear", "values.clear"),
    ("GET", r"/v4/spreadsheets/(?P<id>[^/:]+)/values/(?P<range>[^/:]+)", "values.get"),
    ("PUT", r"/v4/spreadsheets/(?P<id>[^/:]+)/values/(?P<range>[^/:]+)", "values.update"),
    ("GET", r"/drive/v3/files", "files.list"),
    ("GET", r"/drive/v3/files/(?P<id>[^/]+)", "files.get"),
]


@dataclass(frozen=True)
class Seen:
    kind: str
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class _Rule:
    status: int
    times: int | None  #: None: every time
    message: str | None


@dataclass
class Hold:
    """The next request of a kind, held before it is applied until ``release`` is set."""

    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    remaining: int = 1


@dataclass
class FakeSheets:
    url: str
    books: dict[str, Spreadsheet] = field(default_factory=dict)
    accounts: dict[str, bytes] = field(default_factory=dict)  #: email: public key PEM
    tokens: dict[str, str] = field(default_factory=dict)  #: access token: email
    requests: list[Seen] = field(default_factory=list)
    rules: dict[str, _Rule] = field(default_factory=dict)
    hangs: set[str] = field(default_factory=set)
    holds: dict[str, Hold] = field(default_factory=dict)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # -- set up by a test ------------------------------------------------------------------------

    def add_account(self, email: str, public_pem: bytes) -> None:
        self.accounts[email] = public_pem

    def key_file(self, path: Path, email: str, private_pem: str, **extra: Any) -> Path:
        """A service-account key file (Google's JSON shape) for ``email``, signing in here."""
        info = {
            "type": "service_account",
            "project_id": "eval-tests",
            "private_key_id": "k" + secrets.token_hex(8),
            "private_key": private_pem,
            "client_email": email,
            "client_id": "1" + "0" * 20,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": f"{self.url}/token",
            **extra,
        }
        path.write_text(json.dumps(info), encoding="utf-8")
        return path

    def add_spreadsheet(
        self, title: str, access: dict[str, str], sheets: tuple[str, ...] = ("Sheet1",)
    ) -> str:
        spreadsheet_id = f"1{secrets.token_hex(10)}Sheet{next(self._ids)}"
        book = Spreadsheet(
            spreadsheet_id, title, [Worksheet(i, t, i) for i, t in enumerate(sheets)], dict(access)
        )
        self.books[spreadsheet_id] = book
        return spreadsheet_id

    def fail(self, kind: str, status: int, times: int | None = None, message: str | None = None) -> None:
        """Answer requests of ``kind`` with ``status`` (``times`` of them; None: all)."""
        self.rules[kind] = _Rule(status, times, message)

    def hang(self, kind: str) -> None:
        """Never answer requests of ``kind`` (until the fake stops)."""
        self.hangs.add(kind)

    def hold(self, kind: str) -> Hold:
        """Hold the next request of ``kind`` (another client's requests go on meanwhile)."""
        self.holds[kind] = Hold()
        return self.holds[kind]

    # -- read by a test -----------------------------------------------------------------------------

    def values(self, spreadsheet_id: str, title: str) -> list[list[Any]]:
        """The worksheet's cells as stored (typed; None for an empty cell), trailing empties left out."""
        sheet = self.books[spreadsheet_id].sheet(title)
        return sheet.grid(parse_range(quote(title)))

    def sheet(self, spreadsheet_id: str, title: str) -> Worksheet:
        return self.books[spreadsheet_id].sheet(title)

    def count(self, *kinds: str) -> int:
        return sum(1 for r in self.requests if r.kind in kinds)

    def writes(self) -> list[Seen]:
        return [r for r in self.requests if r.kind in WRITES]

    # -- serving ----------------------------------------------------------------------------------

    def answer(self, kind: str, match: dict[str, str], seen: Seen, headers: Any) -> tuple[int, Any]:
        rule = self.rules.get(kind)
        if rule is not None and rule.times != 0:
            if rule.times is not None:
                rule.times -= 1
            return _error(kind, rule.status, rule.message)
        if kind == "token":
            return self._token(seen.body)
        email = self.tokens.get((headers.get("Authorization") or "").removeprefix("Bearer "))
        if email is None:
            return _error(kind, 401)
        try:
            with self.lock:
                if kind.startswith("files."):
                    return 200, self._drive(kind, match, seen, email)
                book = self._book(kind, match["id"], email)
                return 200, self._sheets(kind, book, match, seen)
        except Refused as exc:
            return _error(kind, exc.code, exc.message)

    def _token(self, form: Any) -> tuple[int, Any]:
        from google.auth import jwt

        assertion = (form or {}).get("assertion", [""])[0]
        try:
            unverified = jwt.decode(assertion, verify=False)
            public = self.accounts[unverified["iss"]]
            # google-auth addresses the assertion to Google's token endpoint whatever token_uri says
            audience = [f"{self.url}/token", "https://oauth2.googleapis.com/token"]
            claims = jwt.decode(assertion, certs=public, audience=audience)
        except (KeyError, ValueError) as exc:
            return 400, {
                "error": "invalid_grant",
                "error_description": f"Invalid JWT Signature. ({exc})",
            }
        if "https://www.googleapis.com/auth/spreadsheets" not in str(claims.get("scope", "")).split():
            return 400, {"error": "invalid_scope", "error_description": "The spreadsheets scope is missing."}
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens[token] = claims["iss"]
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _book(self, kind: str, spreadsheet_id: str, email: str) -> Spreadsheet:
        book = self.books.get(spreadsheet_id)
        if book is None:
            raise Refused(404, MESSAGES[404], "NOT_FOUND")
        role = book.access.get(email)
        if role is None or (kind in WRITES and role != "writer"):
            raise Refused(403, MESSAGES[403], "PERMISSION_DENIED")
        return book

    def _sheets(self, kind: str, book: Spreadsheet, match: dict[str, str], seen: Seen) -> Any:
        titles = tuple(s.title for s in book.sheets)
        body, query = seen.body or {}, seen.query
        option = (query.get("valueRenderOption") or ["FORMATTED_VALUE"])[0]
        if kind == "spreadsheets.get":
            return book.resource(self.url)
        if kind == "spreadsheets.batchUpdate":
            replies = batch_update(book, body.get("requests") or [])
            return {"spreadsheetId": book.spreadsheet_id, "replies": replies}
        if kind == "values.get":
            return _get(book, unquote(match["range"]), option, titles)
        if kind == "values.batchGet":
            ranges = [_get(book, r, option, titles) for r in query.get("ranges", [])]
            return {"spreadsheetId": book.spreadsheet_id, "valueRanges": ranges}
        input_option = str(body.get("valueInputOption") or (query.get("valueInputOption") or [""])[0])
        if kind == "values.batchUpdate":
            done = [
                _update(book, d["range"], d.get("values") or [], input_option, titles)
                for d in body.get("data", [])
            ]
            return {
                "spreadsheetId": book.spreadsheet_id,
                "totalUpdatedCells": sum(d["updatedCells"] for d in done),
                "responses": done,
            }
        if kind == "values.update":
            return _update(book, unquote(match["range"]), body.get("values") or [], input_option, titles)
        if kind == "values.append":
            insert = (query.get("insertDataOption") or ["OVERWRITE"])[0]
            return _append(
                book, unquote(match["range"]), body.get("values") or [], input_option, insert, titles
            )
        if kind in ("values.clear", "values.batchClear"):
            ranges = [unquote(match["range"])] if kind == "values.clear" else body.get("ranges", [])
            for text in ranges:
                _clear(book, text, titles)
            return {"spreadsheetId": book.spreadsheet_id, "clearedRanges": ranges}
        raise invalid(f"{kind} is not served by this fake")

    def _drive(self, kind: str, match: dict[str, str], seen: Seen, email: str) -> Any:
        visible = [b for b in self.books.values() if email in b.access]
        if kind == "files.get":
            book = next((b for b in visible if b.spreadsheet_id == match["id"]), None)
            if book is None:
                raise Refused(404, f"File not found: {match['id']}.", "NOT_FOUND")
            return {
                "kind": "drive#file",
                "id": book.spreadsheet_id,
                "name": book.title,
                "mimeType": SHEETS_MIME,
                "capabilities": {"canEdit": book.access[email] == "writer"},
            }
        q = (seen.query.get("q") or [""])[0]
        named = re.search(r"name\s*=\s*\"([^\"]*)\"", q) or re.search(r"name\s*=\s*'((?:[^'\\]|\\.)*)'", q)
        if SHEETS_MIME not in q:
            visible = []
        if named:
            visible = [b for b in visible if b.title == named.group(1).replace("\\'", "'")]
        size = int((seen.query.get("pageSize") or ["100"])[0])
        start = int((seen.query.get("pageToken") or ["0"])[0])
        page = visible[start : start + size]
        files = [
            {
                "id": b.spreadsheet_id,
                "name": b.title,
                "createdTime": "2024-01-01T00:00:00.000Z",
                "modifiedTime": "2024-01-02T00:00:00.000Z",
            }
            for b in page
        ]
        body: dict[str, Any] = {"kind": "drive#fileList", "files": files}
        if start + size < len(visible):
            body["nextPageToken"] = str(start + size)
        return body


def _error(kind: str, status: int, message: str | None = None) -> tuple[int, Any]:
    words = message or MESSAGES.get(status, "Request contains an invalid argument.")
    if kind == "token":
        return status, {
            "error": "invalid_grant" if status < 500 else "internal_failure",
            "error_description": words,
        }
    error: dict[str, Any] = {"code": status, "message": words, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if kind.startswith("files."):  # Drive's errors also list their reasons
        reason = {403: "insufficientFilePermissions", 404: "notFound", 429: "rateLimitExceeded"}.get(
            status, "backendError"
        )
        domain = "usageLimits" if status == 429 else "global"
        error["errors"] = [{"domain": domain, "reason": reason, "message": words}]
    return status, {"error": error}


def _area(book: Spreadsheet, text: str, titles: tuple[str, ...]) -> tuple[Worksheet, Any]:
    area = parse_range(text, titles)
    sheet = book.sheet(area.title) if area.title is not None else book.sheets[0]
    return sheet, area


def _get(book: Spreadsheet, text: str, option: str, titles: tuple[str, ...]) -> dict[str, Any]:
    sheet, area = _area(book, text, titles)
    grid = sheet.grid(area)
    rows = area.r1 - area.r0 if area.r1 is not None else sheet.rows - area.r0
    cols = area.c1 - area.c0 if area.c1 is not None else sheet.cols - area.c0
    body: dict[str, Any] = {"range": area_a1(sheet, area.r0, area.c0, rows, cols), "majorDimension": "ROWS"}
    if grid:
        body["values"] = [[rendered(v, option) for v in row] for row in grid]
    return body


def _update(
    book: Spreadsheet, text: str, values: list[list[Any]], option: str, titles: tuple[str, ...]
) -> dict[str, Any]:
    sheet, area = _area(book, text, titles)
    rows, cols = write_values(sheet, area.r0, area.c0, values, option)
    return {
        "spreadsheetId": book.spreadsheet_id,
        "updatedRange": area_a1(sheet, area.r0, area.c0, rows, cols),
        "updatedRows": rows,
        "updatedColumns": cols,
        "updatedCells": sum(len(r) for r in values),
    }


def _append(
    book: Spreadsheet, text: str, values: list[list[Any]], option: str, insert: str, titles: tuple[str, ...]
) -> dict[str, Any]:
    if insert not in ("OVERWRITE", "INSERT_ROWS"):
        raise invalid(f"Invalid insertDataOption: {insert!r}")
    sheet, area = _area(book, text, titles)
    width = max((len(r) for r in values), default=0)
    last = sheet.last_row()
    at = max(last + 1, area.r0)
    sheet.rows = max(sheet.rows, at + len(values))
    rows, cols = write_values(sheet, at, area.c0, values, option)
    table = area_a1(sheet, 0, area.c0, last + 1, width) if last >= 0 else None
    updates = {
        "spreadsheetId": book.spreadsheet_id,
        "updatedRange": area_a1(sheet, at, area.c0, rows, cols),
        "updatedRows": rows,
        "updatedColumns": cols,
        "updatedCells": sum(len(r) for r in values),
    }
    answer: dict[str, Any] = {"spreadsheetId": book.spreadsheet_id, "updates": updates}
    if table:
        answer["tableRange"] = table
    return answer


def _clear(book: Spreadsheet, text: str, titles: tuple[str, ...]) -> None:
    sheet, area = _area(book, text, titles)
    for r, c in list(sheet.cells):
        inside_rows = area.r0 <= r and (area.r1 is None or r < area.r1)
        if inside_rows and area.c0 <= c and (area.c1 is None or c < area.c1):
            del sheet.cells[(r, c)]


def _route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    for verb, pattern, kind in _ROUTES:
        found = re.fullmatch(pattern, path)
        if verb == method and found:
            return kind, found.groupdict()
    return None


def _handler(fake: FakeSheets) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            raw = read_body(self)
            parts = urlsplit(self.path)
            routed = _route(self.command, parts.path)
            if routed is None:
                message = f"no route {self.command} {parts.path}"
                answer_json(self, 404, {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}})
                return
            kind, groups = routed
            form = kind == "token"
            body = parse_qs(raw.decode()) if form else (json.loads(raw) if raw else None)
            seen = Seen(kind, self.command, parts.path, parse_qs(parts.query), body)
            fake.requests.append(seen)
            if kind in fake.hangs:
                fake.released.wait(60)
                self.close_connection = True
                return
            held = fake.holds.get(kind)
            if held is not None and held.remaining > 0:
                held.remaining -= 1
                held.arrived.set()
                held.release.wait(60)
            status, answer = fake.answer(kind, groups, seen, self.headers)
            answer_json(self, status, answer)

        do_GET = do_POST = do_PUT = _serve

    return Handler


@contextmanager
def fake_sheets() -> Iterator[FakeSheets]:
    made: list[FakeSheets] = []

    def handler_for(url: str) -> type[BaseHTTPRequestHandler]:
        made.append(FakeSheets(url))
        return _handler(made[0])

    with loopback_server(handler_for):
        try:
            yield made[0]
        finally:
            made[0].released.set()
            for held in made[0].holds.values():
                held.release.set()
