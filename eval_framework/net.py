"""What went wrong talking to a service, decided by what happened, not by guessing from messages
of unrelated errors.

Every boundary (W&B logging and registry, the Hugging Face Hub, S3, OpenAI-compatible servers)
classifies its failures here, so that the same event gets the same handling everywhere:

==============  =====================================================  ===========
kind            what happened                                          retried
==============  =====================================================  ===========
unreachable     refused connection, unknown host, no route             no (fast)
connection      connection reset or dropped mid-request                yes
timeout         no answer in time                                      yes
auth            HTTP 401/403: the credentials                          no
not_found       HTTP 404/410, or the service said "not found"          no
transient       HTTP 408/429/5xx                                       yes
client          other HTTP 4xx: the request itself                     no
other           anything else (a bug, a usage error)                   no
==============  =====================================================  ===========

The W&B SDK's Go service reports transport failures as text (``dial tcp ...: connection
refused``, ``context deadline exceeded``, ``returned error 401``), so text is read too, but only
for these specific shapes.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    UNREACHABLE = "unreachable"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    TRANSIENT = "transient"
    CLIENT = "client"
    OTHER = "other"


RETRYABLE = frozenset({Kind.CONNECTION, Kind.TIMEOUT, Kind.TRANSIENT})


@dataclass(frozen=True)
class Failure:
    kind: Kind
    reason: str  #: a few words: "connection refused", "HTTP 503", "timed out"
    status: int | None = None

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


_REFUSED = re.compile(r"connection refused|actively refused", re.I)
_NO_HOST = re.compile(
    r"no such host|name or service not known|nodename nor servname|temporary failure in name resolution|"
    r"getaddrinfo failed|failed to resolve|name resolution",
    re.I,
)
_NO_ROUTE = re.compile(r"network is unreachable|no route to host|cannot assign requested address", re.I)
_DROPPED = re.compile(
    r"connection reset|broken pipe|remote end closed|server disconnected|unexpected eof", re.I
)
_TIMEOUT = re.compile(r"timed? ?out|deadline exceeded|i/o timeout", re.I)
_STATUS = re.compile(r"\b(?:HTTP|status(?: code)?|error|code)[\s:=]*([1-5]\d\d)\b", re.I)
_NOT_FOUND = re.compile(r"\bnot found\b|does not exist", re.I)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def of_status(status: int) -> Kind:
    if status in (401, 403):
        return Kind.AUTH
    if status in (404, 410):
        return Kind.NOT_FOUND
    if status in (408, 429) or status >= 500:
        return Kind.TRANSIENT
    if 400 <= status < 500:
        return Kind.CLIENT
    return Kind.OTHER


def _status_of(exc: BaseException) -> int | None:
    for holder in (getattr(exc, "response", None), exc):
        status = getattr(holder, "status_code", None) or getattr(holder, "status", None)
        if isinstance(status, int) and 100 <= status < 600:
            return status
    return None


def _by_type(exc: BaseException) -> Failure | None:
    status = _status_of(exc)
    if status is not None:
        return Failure(of_status(status), f"HTTP {status}", status)
    if isinstance(exc, ConnectionRefusedError):
        return Failure(Kind.UNREACHABLE, "connection refused")
    if isinstance(exc, socket.gaierror):
        return Failure(Kind.UNREACHABLE, "host name not found")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return Failure(Kind.CONNECTION, "connection dropped")
    if isinstance(exc, TimeoutError | socket.timeout):
        return Failure(Kind.TIMEOUT, "timed out")
    name = type(exc).__name__
    if name in (
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "TimeoutException",
        "Timeout",
    ):
        return Failure(Kind.TIMEOUT, "timed out")
    return None


def _by_text(text: str) -> Failure | None:
    if _REFUSED.search(text):
        return Failure(Kind.UNREACHABLE, "connection refused")
    if _NO_HOST.search(text):
        return Failure(Kind.UNREACHABLE, "host name not found")
    if _NO_ROUTE.search(text):
        return Failure(Kind.UNREACHABLE, "no route to the host")
    match = _STATUS.search(text)
    if match:
        status = int(match.group(1))
        return Failure(of_status(status), f"HTTP {status}", status)
    if _DROPPED.search(text):
        return Failure(Kind.CONNECTION, "connection dropped")
    if _TIMEOUT.search(text):
        return Failure(Kind.TIMEOUT, "timed out")
    return None


def classify(exc: BaseException) -> Failure:
    """What kind of failure ``exc`` is (its causes included)."""
    chain = list(_chain(exc))
    for item in chain:
        found = _by_type(item)
        if found is not None:
            return found
    # Connection-level exceptions of HTTP clients (httpx.ConnectError, requests.ConnectionError)
    # and the W&B service's errors carry the reason only in their text.
    for item in chain:
        found = _by_text(str(item))
        if found is not None:
            return found
    if any(_NOT_FOUND.search(str(item)) for item in chain):
        return Failure(Kind.NOT_FOUND, "not found")
    return Failure(Kind.OTHER, type(exc).__name__)


def advice(failure: Failure, service: str, url: str, url_variable: str, key_variable: str) -> str:
    """'what happened: what to do' for a classified failure, the same words at every boundary."""
    if failure.kind is Kind.UNREACHABLE:
        return f"cannot reach {service} at {url} ({failure.reason}): check network access and {url_variable}"
    if failure.kind is Kind.TIMEOUT:
        return (
            f"{service} at {url} did not answer in time ({failure.reason}): check network access and "
            f"{url_variable}, or retry later"
        )
    if failure.kind is Kind.CONNECTION:
        return f"the connection to {service} at {url} dropped ({failure.reason}): retry later"
    if failure.kind is Kind.AUTH:
        return f"{service} at {url} refused the credentials ({failure.reason}): check {key_variable}"
    if failure.kind is Kind.TRANSIENT:
        return f"{service} at {url} is failing ({failure.reason}): retry later"
    if failure.kind is Kind.NOT_FOUND:
        return f"{service} says not found ({failure.reason})"
    return f"{service} refused the request ({failure.reason})"
