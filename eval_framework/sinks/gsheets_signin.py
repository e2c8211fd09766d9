"""Signing in at the key file's ``token_uri``, and its failures put in words.

A refusal (a JSON OAuth error, such as ``invalid_grant``) is about the key. A token endpoint that
fails (5xx), or answers with something that is not a token answer (a web page: ``token_uri``
points at the wrong server), is about that server and is said so, naming ``token_uri``'s host,
never quoting the page. google-auth's error does not carry the HTTP status, so the transport we
hand it (its documented ``Request`` callable) remembers the status it saw.

google-auth is imported here only inside functions: importing eval_framework never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from eval_framework.net import Kind, classify
from eval_framework.sinks import gsheets_api as api

if TYPE_CHECKING:
    from gspread import Client

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


class SignInServerFailed(Exception):
    """The token endpoint failed (5xx) or did not answer as one; ``status`` as it answered."""

    def __init__(self, status: int | None) -> None:
        super().__init__(f"HTTP {status}" if status else "no token answer")
        self.status = status


class _Transport:
    """google-auth's requests transport, remembering the last HTTP status it got."""

    def __init__(self) -> None:
        from google.auth.transport.requests import Request

        self._request = Request()
        self.status: int | None = None

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        kwargs["timeout"] = (api.CONNECT_TIMEOUT_S, api.READ_TIMEOUT_S)
        response = self._request(url, method=method, **kwargs)
        self.status = int(response.status)
        return response


def fetch_token(client: Client) -> None:
    """Sign in now (before anything is sent), within the request timeout."""
    from google.auth.exceptions import RefreshError

    transport = _Transport()
    try:
        client.http_client.auth.refresh(transport)  # type: ignore[no-untyped-call]
    except RefreshError as exc:
        status = transport.status
        if (status is not None and status >= 500) or not _oauth_error(exc):
            raise SignInServerFailed(status) from exc
        raise


def _oauth_error(exc: BaseException) -> bool:
    """google-auth's refusal carried a JSON answer (an OAuth error), not a page or plain text."""
    return len(exc.args) > 1 and isinstance(exc.args[1], dict)


def _host(account: api.ServiceAccount) -> str:
    return urlsplit(account.token_uri).netloc.rpartition("@")[2] or account.token_uri


def _at_token_uri(exc: BaseException, account: api.ServiceAccount) -> bool:
    from google.auth.exceptions import TransportError

    endpoint = api.endpoint_of(exc)
    return isinstance(exc, TransportError) or (
        endpoint is not None and endpoint.split(" ")[-1] == account.token_uri.split("?", 1)[0]
    )


def explain(exc: BaseException, account: api.ServiceAccount) -> tuple[str, str] | None:
    """(why, what to do) for a failure of signing in; None when ``exc`` is not one."""
    from google.auth.exceptions import RefreshError

    check = f"check token_uri in {account.path} (the key's sign-in endpoint; Google's is {GOOGLE_TOKEN_URI})"
    server_failed = isinstance(exc, SignInServerFailed) or (
        isinstance(exc, RefreshError) and (exc.retryable or not _oauth_error(exc))
    )
    if server_failed:
        status = getattr(exc, "status", None)
        if status is not None and status < 500:  # a page where a token answer belongs
            return (
                f"the sign-in server {_host(account)} ({account.token_uri}) answered HTTP {status} "
                "with something that is not a token answer",
                check,
            )
        said = f"HTTP {status}" if status else "no token answer"
        return (
            f"the sign-in server {_host(account)} ({account.token_uri}) is failing ({said})",
            f"retry later; if it keeps failing, {check}",
        )
    if isinstance(exc, RefreshError):
        reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else type(exc).__name__
        return (
            f"the token endpoint {account.token_uri} refused the service account {account.email}: "
            f"{api.said(reason)}",
            f"the key in {account.path} may have been deleted or the account disabled; {api.KEY_HELP}",
        )
    if not _at_token_uri(exc, account):
        return None
    if classify(exc).kind is Kind.TIMEOUT:
        return (
            f"the sign-in server {_host(account)} ({account.token_uri}) did not answer within "
            f"{api.READ_TIMEOUT_S:g} s",
            f"retry later; check network access, and {check}",
        )
    return (
        f"cannot reach the sign-in server {_host(account)} ({account.token_uri}; {classify(exc).reason})",
        f"check network access, and {check}",
    )
