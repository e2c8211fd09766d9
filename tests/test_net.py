"""Failures are classified by what happened, the same way at every boundary."""

from __future__ import annotations

import socket

import httpx
import pytest

from eval_framework.net import Kind, classify


@pytest.mark.parametrize(
    ("exc", "kind", "retryable"),
    [
        # what the W&B SDK's Go service reports, as text
        (Exception('Failed to get resume status: context deadline exceeded\nwhile retrying: Post '
                   '"http://127.0.0.1:9/graphql": dial tcp 127.0.0.1:9: connect: connection refused'),
         Kind.UNREACHABLE, False),
        (Exception("Failed to get resume status for run x: returned error 401: {}"), Kind.AUTH, False),
        (Exception("context deadline exceeded\nwhile retrying: HTTP 500: {}"), Kind.TRANSIENT, True),
        (Exception("POST http://h/graphql giving up after 1 attempt(s): context deadline exceeded"),
         Kind.TIMEOUT, True),
        (Exception("dial tcp: lookup nosuchhost: no such host"), Kind.UNREACHABLE, False),
        # Python's own and the HTTP clients'
        (ConnectionRefusedError(111, "Connection refused"), Kind.UNREACHABLE, False),
        (socket.gaierror(-2, "Name or service not known"), Kind.UNREACHABLE, False),
        (ConnectionResetError(104, "reset"), Kind.CONNECTION, True),
        (TimeoutError("timed out"), Kind.TIMEOUT, True),
        (httpx.ConnectError("[Errno 111] Connection refused"), Kind.UNREACHABLE, False),
        (httpx.ReadTimeout("read"), Kind.TIMEOUT, True),
        (Exception("artifact membership 'x:v9' not found in 'org/reg'"), Kind.NOT_FOUND, False),
        # programming errors are not network failures and are never retried
        (KeyError("metrics"), Kind.OTHER, False),
        (ValueError("bad value"), Kind.OTHER, False),
    ],
)  # fmt: skip
def test_classification(exc, kind, retryable):
    failure = classify(exc)
    assert failure.kind is kind
    assert failure.retryable is retryable


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, Kind.AUTH), (403, Kind.AUTH), (404, Kind.NOT_FOUND), (408, Kind.TRANSIENT), (429, Kind.TRANSIENT),
     (500, Kind.TRANSIENT), (503, Kind.TRANSIENT), (400, Kind.CLIENT), (422, Kind.CLIENT)],
)  # fmt: skip
def test_http_statuses(status, kind):
    response = httpx.Response(status, request=httpx.Request("GET", "http://127.0.0.1/x"))
    error = httpx.HTTPStatusError("x", request=response.request, response=response)
    assert classify(error).kind is kind
    assert classify(error).status == status


def test_a_cause_is_followed():
    outer = RuntimeError("wrapped")
    outer.__cause__ = ConnectionRefusedError(111, "refused")  # what `raise ... from inner` records
    assert classify(outer).kind is Kind.UNREACHABLE
