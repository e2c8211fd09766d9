"""The ``gsheets`` destination's connection to Google: the service-account key, gspread's client
pointed at the API (or at ``EVAL_FRAMEWORK_SHEETS_API_URL``), bounded retries and timeouts, and
every failure put in words: what failed, why, and what to do.

gspread is imported here only inside functions: importing eval_framework never imports it.
The private key is read into memory for signing and never appears in a message; the key file's
path and the service account's email (which users share the spreadsheet with) may.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval_framework import retry_policy
from eval_framework.errors import ConfigError, brief, missing_extra
from eval_framework.net import Kind, classify

if TYPE_CHECKING:
    from gspread import Client
    from gspread.http_client import HTTPClient

CREDENTIALS_VAR = "GOOGLE_APPLICATION_CREDENTIALS"
#: Where the Sheets API (https://sheets.googleapis.com) and the Drive API
#: (https://www.googleapis.com) are reached instead: a proxy or a private endpoint.
API_URL_VAR = "EVAL_FRAMEWORK_SHEETS_API_URL"
GOOGLE_BASES = ("https://sheets.googleapis.com", "https://www.googleapis.com")
#: Write cells; read file names and whether the account may edit (for spreadsheet_name and the
#: check before exporting). Nothing else in the account's Drive is readable with these.
SCOPES = (
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/drive.metadata.readonly",
)
#: Seconds to connect, and to wait for an answer, per request (a silent server ends in time).
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
#: Tries per request: a 429 (quota) is tried again for every request; a 5xx, a dropped
#: connection or a timeout only for reads (a write that may have been applied is not repeated).
#: Waits are random below 2, 4, 8, 16, 32 s: Google's quotas are per minute.
ATTEMPTS = 6
TIMEOUT_ATTEMPTS = 2
FIRST_WAIT_S = 2.0
RETRY_WAIT_MAX = 32.0  #: seconds, the cap on one wait (tests set 0)
KEY_HELP = (
    "create a JSON key for a service account (Google Cloud console: IAM & Admin > Service accounts "
    "> the account > Keys > Add key > JSON)"
)


@dataclass(frozen=True)
class ServiceAccount:
    path: Path
    email: str
    token_uri: str
    info: dict[str, Any] = field(repr=False)  #: holds the private key: never printed


def load_service_account(configured: Path | None) -> ServiceAccount:
    """The key file from ``service_account_file``, else GOOGLE_APPLICATION_CREDENTIALS, checked
    to be a readable service-account key (ConfigError saying what to set or fix)."""
    raw = str(configured) if configured is not None else os.environ.get(CREDENTIALS_VAR, "").strip()
    if not raw:
        raise ConfigError(
            "gsheets export needs a Google service-account key: set service_account_file in its config, "
            f"or {CREDENTIALS_VAR}, to the key's JSON file ({KEY_HELP}); then share the spreadsheet "
            "with the account's email as Editor"
        )
    path = Path(raw).expanduser().absolute()
    where = "service_account_file" if configured is not None else CREDENTIALS_VAR
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"gsheets export: the service-account key {path} ({where}) does not exist; "
                          f"fix the path, or {KEY_HELP}") from exc  # fmt: skip
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is not a text file"
        raise ConfigError(
            f"gsheets export: cannot read the service-account key {path} ({where}): {why}; fix its "
            "path or permissions"
        ) from exc
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:  # its text (a private key, maybe) is never quoted
        raise ConfigError(
            f"gsheets export: {path} ({where}) is not JSON, so not a service-account key; {KEY_HELP}"
        ) from exc
    return ServiceAccount(path, *_checked(info, path), info)


def _checked(info: Any, path: Path) -> tuple[str, str]:
    """The key's client_email and token_uri, once it is known to be a service-account key."""
    if isinstance(info, dict) and ("installed" in info or "web" in info):
        raise ConfigError(
            f"gsheets export: {path} is an OAuth client file (for signing in as a person), not a "
            f"service-account key; {KEY_HELP}"
        )
    kind = info.get("type") if isinstance(info, dict) else None
    if kind != "service_account":
        what = f"a {kind!r} credential" if isinstance(kind, str) else "not a service-account key"
        raise ConfigError(f"gsheets export: {path} is {what}, not a service-account key; {KEY_HELP}")
    missing = [k for k in ("client_email", "private_key", "token_uri") if not isinstance(info.get(k), str)]
    if missing:
        raise ConfigError(
            f"gsheets export: the service-account key {path} lacks {', '.join(missing)} (a damaged or "
            f"edited file?); download a new key: {KEY_HELP}"
        )
    return info["client_email"], info["token_uri"]


def api_base() -> str | None:
    """EVAL_FRAMEWORK_SHEETS_API_URL without its trailing slash; None when unset."""
    raw = os.environ.get(API_URL_VAR, "").strip().rstrip("/")
    if raw and not raw.startswith(("http://", "https://")):
        raise ConfigError(
            f"{API_URL_VAR}={raw!r} is not an http(s) URL; set e.g. https://sheets-proxy.example.com, or "
            "leave it unset for Google's own endpoints"
        )
    return raw or None


def rebased(url: str, base: str | None) -> str:
    """A Google API URL sent to ``base`` instead, its path kept."""
    if base:
        for google in GOOGLE_BASES:
            if url.startswith(google + "/"):
                return base + url[len(google) :]
    return url


def _worth_retrying(method: str, exc: BaseException) -> bool:
    failure = classify(exc)
    if failure.status == 429:
        return True
    return method.lower() == "get" and failure.retryable


def _http_client_class(base: str | None) -> type[HTTPClient]:
    """gspread's HTTPClient (its documented extension point, the ``http_client`` argument of its
    Client), with Google's URLs rebased and each request retried under one bounded policy."""
    from gspread.http_client import HTTPClient, ParamsType

    class SheetsHTTPClient(HTTPClient):
        def request(  # noqa: PLR0913  (gspread's own signature)
            self,
            method: str,
            endpoint: str,
            params: ParamsType | None = None,
            data: bytes | None = None,
            json: Any = None,
            files: Any = None,
            headers: Any = None,
        ) -> Any:
            url = rebased(endpoint, base)
            policy = retry_policy.Policy(
                functools.partial(_worth_retrying, method),
                ATTEMPTS,
                RETRY_WAIT_MAX,
                first_wait=FIRST_WAIT_S,
                limits={_timeout_class(): TIMEOUT_ATTEMPTS},
            )
            return retry_policy.call(
                lambda: HTTPClient.request(self, method, url, params, data, json, files, headers), policy
            )

    return SheetsHTTPClient


def _timeout_class() -> type[BaseException]:
    from requests.exceptions import Timeout

    found: type[BaseException] = Timeout
    return found


def require_extra() -> None:
    """ConfigError naming the ``gsheets`` extra when gspread or google-auth is not installed."""
    try:
        import google.oauth2.service_account  # noqa: F401
        import gspread  # noqa: F401
    except ImportError as exc:
        raise missing_extra("gspread", "gsheets", ConfigError) from exc


def connect(account: ServiceAccount) -> Client:
    """gspread's client for the account (ConfigError for a key google-auth cannot use)."""
    require_extra()
    import gspread
    from google.oauth2.service_account import Credentials

    base = api_base()
    try:
        credentials = Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            account.info, scopes=list(SCOPES)
        )
    except ValueError as exc:  # cryptography's words about the key are not repeated
        raise ConfigError(
            f"gsheets export: the private_key in {account.path} cannot be read (a damaged or edited "
            f"file?); download a new key: {KEY_HELP}"
        ) from exc
    client = gspread.Client(auth=credentials, http_client=_http_client_class(base))
    client.set_timeout((CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
    return client


def api_errors() -> tuple[type[BaseException], ...]:
    """What talking to Google can raise (what ``explain`` words)."""
    from google.auth.exceptions import GoogleAuthError
    from gspread.exceptions import APIError
    from requests.exceptions import RequestException

    from eval_framework.sinks.gsheets_signin import SignInServerFailed

    return (APIError, RequestException, GoogleAuthError, SignInServerFailed)


def explain(exc: BaseException, account: ServiceAccount) -> tuple[str, str]:
    """(why, what to do) for a failure of a request to Google."""
    from gspread.exceptions import APIError

    from eval_framework.sinks import gsheets_signin

    if isinstance(exc, APIError):
        return _api_error(exc, account)
    signing_in = gsheets_signin.explain(exc, account)
    if signing_in is not None:
        return signing_in
    endpoint = endpoint_of(exc) or "Google"
    failure = classify(exc)
    if failure.kind is Kind.TIMEOUT:
        return (
            f"{endpoint} did not answer within {READ_TIMEOUT_S:g} s",
            f"retry later; check network access and {API_URL_VAR} if it is set",
        )
    return (
        f"cannot reach {endpoint} ({failure.reason})",
        f"check network access, and {API_URL_VAR} if it is set (a proxy or private endpoint)",
    )


def _api_error(exc: Any, account: ServiceAccount) -> tuple[str, str]:
    code, status = exc.code, str(exc.error.get("status") or "")
    message = said(str(exc.error.get("message") or ""))
    why = f"{endpoint_of(exc) or 'Google'} answered {code} {status}: {message}".rstrip(": ")
    if code == 429 or "rateLimitExceeded" in str(exc.error) or "RATE_LIMIT" in str(exc.error):
        return (
            f"{why} (Google's request quota, still after {ATTEMPTS} tries)",
            "wait a minute and export again (the quota is per minute, per project and per user), or "
            "export fewer bundles at once",
        )
    if code == 403 and (
        "has not been used" in message or "is disabled" in message or "SERVICE_DISABLED" in str(exc.error)
    ):
        return (
            why,
            "enable the Google Sheets API (and the Drive API, for spreadsheet_name) in the service "
            "account's project, then export again",
        )
    if code in (401, 403):
        protected = ", and check that the worksheet is not protected" if _method(exc) != "GET" else ""
        return why, (
            f"share the spreadsheet with the service account {account.email} as Editor (Share > add "
            f"that address){protected}"
        )
    if code == 404:
        return (
            why,
            "check spreadsheet_id (the part of the spreadsheet's URL after /d/); it may have been deleted",
        )
    if code >= 500:
        return (
            why,
            "Google is failing: retry later (exporting again is safe: the row is updated, never added twice)",
        )
    return (
        why,
        "this request was refused as it is; check the worksheet's state, or report it with the message",
    )


def said(text: str) -> str:
    """A service's own words, one line, scrubbed and cut (its final full stop dropped: more follows)."""
    return brief(RuntimeError(text), limit=240).rstrip(".")


def _method(exc: Any) -> str:
    return str(getattr(getattr(getattr(exc, "response", None), "request", None), "method", "") or "").upper()


def endpoint_of(exc: BaseException) -> str | None:
    """'METHOD URL' (without its query) of the request that failed, if known."""
    current: BaseException | None = exc
    while current is not None:
        request = getattr(getattr(current, "response", None), "request", None) or getattr(
            current, "request", None
        )
        url = getattr(request, "url", None)
        if isinstance(url, str):
            return f"{getattr(request, 'method', '') or ''} {url.split('?', 1)[0]}".strip()
        current = current.__cause__ or current.__context__
    return None
