"""Talking to an MLflow tracking server: the client (imported only when used), bounded calls,
and its failures said in export terms, the tracking URI shown without credentials.

MLflow's client retries a failing request 7 times with a growing wait and waits 120 s for an
answer, which holds a command for minutes when the server is down. Our calls run with fewer
retries and a shorter wait (``PREFLIGHT`` and ``PUBLISH``), set through MLflow's own environment
variables for the duration of the call only; a variable the user set wins.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from eval_framework.errors import ConfigError, EvalFrameworkError, ExportError, brief, missing_extra
from eval_framework.net import Failure, Kind, advice, classify, of_status
from eval_framework.redact import register_secret, scrub

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

SINK = "mlflow"
SERVICE = "the MLflow tracking server"
URI_SETTING = "tracking_uri (or MLFLOW_TRACKING_URI)"
CREDENTIALS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@dataclass(frozen=True)
class Bounds:
    """How long one of our requests may take: retries after the first try, seconds to wait for
    an answer, and the backoff factor between retries (1: 1 s, 2 s, ...)."""

    retries: int
    timeout_s: int
    backoff: int = 1

    def variables(self) -> dict[str, str]:
        return {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.retries),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.timeout_s),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(self.backoff),
        }


#: The check before anything is sent: a down server is said within seconds.
PREFLIGHT = Bounds(retries=1, timeout_s=5)
#: Sending a bundle: a server that hiccups once is retried.
PUBLISH = Bounds(retries=2, timeout_s=30)

_TOO_MANY = re.compile(r"too many (\d{3}) error responses")


@contextmanager
def bounded(bounds: Bounds) -> Iterator[None]:
    """MLflow's request settings for our calls; the process's own are restored after."""
    mine = {name: value for name, value in bounds.variables().items() if name not in os.environ}
    os.environ.update(mine)
    try:
        yield
    finally:
        for name in mine:
            os.environ.pop(name, None)


def shown(uri: str) -> str:
    """The tracking URI as messages show it: a password or token in it masked."""
    return scrub(uri)


def location(uri: str) -> str:
    """The tracking URI without any credentials in it (for a link to the run)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def protect(uri: str) -> None:
    """Keep the credentials this export uses out of every later message and log line."""
    for name in SECRET_VARIABLES:
        register_secret(os.environ.get(name))
    userinfo = urlsplit(uri).netloc.rpartition("@")[0]
    if userinfo:
        register_secret(userinfo.partition(":")[2] or userinfo)


def client(uri: str) -> MlflowClient:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise missing_extra("mlflow", "mlflow", ConfigError) from exc
    return MlflowClient(tracking_uri=uri)


def failure_of(exc: BaseException) -> Failure:
    """What went wrong, ``net.classify``'s words; MLflow's own shapes read first."""
    current: BaseException | None = exc
    while current is not None:
        match = _TOO_MANY.search(str(current))
        if match:  # the retries ran out on an HTTP status
            status = int(match.group(1))
            return Failure(of_status(status), f"HTTP {status}", status)
        current = current.__cause__ or current.__context__
    found = classify(exc)
    code = getattr(exc, "get_http_status_code", None)
    said = getattr(exc, "json", None)
    if found.kind is Kind.OTHER and isinstance(said, dict) and said.get("error_code") and callable(code):
        # MLflow's own error (a JSON error_code), with the HTTP status it stands for; a JSON
        # answer without one (a proxy's) loses its status in the client: said as it came
        status = int(code())
        return Failure(of_status(status), f"{said['error_code']}, HTTP {status}", status)
    return found


def describe(exc: BaseException, uri: str, doing: str) -> str:
    """One line: what failed at which server, why, and what to do."""
    failure = failure_of(exc)
    where = shown(uri)
    if failure.kind in (Kind.UNREACHABLE, Kind.TIMEOUT, Kind.CONNECTION, Kind.TRANSIENT, Kind.AUTH):
        return f"{doing}: {advice(failure, SERVICE, where, URI_SETTING, CREDENTIALS)}"
    if failure.kind is Kind.NOT_FOUND and "RESOURCE_DOES_NOT_EXIST" not in str(exc):
        return (
            f"{doing}: {where} does not answer as an MLflow tracking server ({failure.reason}); check "
            f"{URI_SETTING}: it is the server's address, e.g. http://host:5000"
        )
    return f"{doing}: {SERVICE} at {where} refused it ({brief(exc)})"


@contextmanager
def calling(uri: str, doing: str, preflight: bool = False) -> Iterator[None]:
    """MLflow calls, bounded; their failures as ConfigError (``preflight``) or ExportError."""
    with bounded(PREFLIGHT if preflight else PUBLISH):
        try:
            yield
        except EvalFrameworkError:
            raise
        except Exception as exc:  # the client's and its HTTP library's, translated here
            message = describe(exc, uri, doing)
            if preflight:
                raise ConfigError(f"mlflow export: {message}") from exc
            raise ExportError(message, sink=SINK) from exc


def experiment_id(mlflow: Any, name: str, uri: str, create: bool) -> str | None:
    """The experiment's id; None when it does not exist and ``create`` is false. A deleted one
    is refused: MLflow keeps its name taken."""
    found = mlflow.get_experiment_by_name(name)
    if found is None and create:
        try:
            return str(mlflow.create_experiment(name))
        except Exception as exc:  # another export created it just now
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
            found = mlflow.get_experiment_by_name(name)
    if found is None:
        return None
    if found.lifecycle_stage == "deleted":
        raise ConfigError(
            f"mlflow export: the experiment {name!r} at {shown(uri)} is deleted; restore it (mlflow "
            f"experiments restore --experiment-id {found.experiment_id}) or choose another experiment_name"
        )
    return str(found.experiment_id)
