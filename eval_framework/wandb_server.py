"""Can this process log to W&B online, decided in seconds before the SDK is asked.

``wandb.init`` against a server it cannot reach retries until its init timeout (90 s by default)
whatever the cause, then leaves the run id registered in its service, so a second attempt in the
same process fails with "run ID ... is in use". One plain HTTP request (the viewer query the SDK
itself sends first, with the same key) tells the causes apart at once: refused or unknown host
(fail now), no answer (bounded by ``PROBE_TIMEOUT``), a rejected key (log offline), a failing
server (retry later). A key the SDK would refuse on its own (wrong length or characters) is
recognised without any request.
"""

from __future__ import annotations

import netrc
import os
from urllib.parse import urlparse

from eval_framework import env, retry_policy
from eval_framework.net import Failure, Kind, classify

#: Seconds one reachability probe may take (connect and answer); WANDB_HTTP_TIMEOUT, the SDK's own
#: setting for its HTTP calls, overrides it.
PROBE_TIMEOUT = 10.0
_VIEWER = {"query": "query Viewer { viewer { id } }"}
#: Seconds one registry lookup may wait on the SDK's service (the SDK's own default);
#: WANDB_HTTP_TIMEOUT overrides it.
LOOKUP_TIMEOUT = 19.0


def _seconds(default: float) -> float:
    """WANDB_HTTP_TIMEOUT, else ``default``."""
    configured = env.get("WANDB_HTTP_TIMEOUT")
    return default if configured is None else float(configured)


def lookup_timeout() -> float:
    """How long one registry lookup (a GraphQL request through the SDK's service) may take."""
    return _seconds(LOOKUP_TIMEOUT)


def base_url() -> str:
    """The server the SDK talks to: WANDB_BASE_URL, else the host of a ``wandb login``, else the
    SDK's default."""
    configured = os.environ.get("WANDB_BASE_URL", "").strip()
    if configured:
        return configured.rstrip("/")
    try:
        from wandb.sdk import wandb_setup

        return str(wandb_setup.singleton().settings.base_url).rstrip("/")
    except Exception:  # the SDK not set up yet: its default  # noqa: BLE001
        return "https://api.wandb.ai"


def api_key() -> str | None:
    """WANDB_API_KEY, else the netrc entry for the server (what ``wandb login`` writes)."""
    key = os.environ.get("WANDB_API_KEY", "").strip()
    if key:
        return key
    host = urlparse(base_url()).hostname or ""
    try:
        found = netrc.netrc(os.environ.get("NETRC") or None).authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None
    return found[2] if found and found[2] else None


def key_problem(key: str) -> str | None:
    """What the SDK would say is wrong with the key's form (no request made), or None."""
    try:
        from wandb.sdk.lib.wbauth.validation import check_api_key
    except ImportError:  # another SDK layout: let the server judge
        return None
    return check_api_key(key)


class _ProbeFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def check(attempts: int, wait_max: float) -> Failure | None:
    """``probe`` up to ``attempts`` times while the failure is transient (capped exponential backoff
    with jitter, waits capped at ``wait_max``); a refused connection or a rejected key is final at once."""

    def once() -> None:
        failure = probe()
        if failure is not None:
            raise _ProbeFailed(failure)

    def transient(exc: BaseException) -> bool:
        return isinstance(exc, _ProbeFailed) and exc.failure.retryable

    try:
        retry_policy.call(once, retry_policy.Policy(transient, attempts, wait_max))
    except _ProbeFailed as exc:
        return exc.failure
    return None


def probe(timeout: float | None = None) -> Failure | None:
    """None when the server answers the key's viewer query; else what went wrong."""
    import httpx

    if timeout is None:
        timeout = _seconds(PROBE_TIMEOUT)
    key = api_key() or ""
    try:
        response = httpx.post(
            f"{base_url()}/graphql", json=_VIEWER, auth=("api", key), timeout=timeout, follow_redirects=True
        )
    except httpx.HTTPError as exc:
        failure = classify(exc)
        if isinstance(exc, httpx.TimeoutException):
            return Failure(Kind.TIMEOUT, f"no answer within {timeout:g} s")
        return failure
    if response.status_code == 200:
        return None
    return classify(httpx.HTTPStatusError("probe", request=response.request, response=response))
