"""Every environment variable the project reads: its name, what it is for, its default, how its
value is read, and whether it is a secret. Config, redaction, ``.env`` loading and the readers
below all use this table; ``.env.example`` lists exactly these names (a test checks it).

Variables the wandb SDK or boto3 read themselves (``WANDB_INIT_TIMEOUT``, ``AWS_ENDPOINT_URL``, ...)
are listed so users find them in one place; ``get`` is for the ones this project reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eval_framework.errors import ConfigError


def _seconds(name: str, raw: str, zero_allowed: bool) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(
            f"{name}={raw!r} is not a number of seconds; set e.g. 60, or leave it unset"
        ) from exc
    if value < 0 or (value == 0 and not zero_allowed):
        bound = "0 or more" if zero_allowed else "above 0"
        raise ConfigError(f"{name}={raw!r} must be {bound} seconds; set e.g. 60, or leave it unset")
    return value


def positive_seconds(name: str, raw: str) -> float:
    return _seconds(name, raw, zero_allowed=False)


def seconds_or_zero(name: str, raw: str) -> float:
    return _seconds(name, raw, zero_allowed=True)


def flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not true or false; set true or false, or leave it unset")


def text(name: str, raw: str) -> str:
    return raw


@dataclass(frozen=True)
class EnvVar:
    name: str
    help: str
    default: Any = None  #: what an unset or blank variable means
    parse: Callable[[str, str], Any] = text  #: (name, raw value) -> value; raises ConfigError
    secret: bool = False  #: its value is masked wherever it appears


VARS: tuple[EnvVar, ...] = (
    EnvVar("WANDB_API_KEY", "W&B API key (logging, registry checkpoints)", secret=True),
    EnvVar("WANDB_ENTITY", "default W&B entity"),
    EnvVar("WANDB_BASE_URL", "W&B server URL, e.g. https://api.wandb.ai"),
    EnvVar("AWS_ACCESS_KEY_ID", "S3 credentials for reference-backed checkpoints", secret=True),
    EnvVar("AWS_SECRET_ACCESS_KEY", "S3 credentials for reference-backed checkpoints", secret=True),
    EnvVar("AWS_ENDPOINT_URL", "S3-compatible endpoint URL"),
    EnvVar(
        "WANDB_CACHE_SKIP",
        "store checkpoints once, without a W&B cache copy (default true)",
        default=True,
        parse=flag,
    ),
    EnvVar("WANDB_ARTIFACT_DIR", "persistent directory for downloaded checkpoints (default: a temp dir)"),
    EnvVar(
        "WANDB_ARTIFACT_WAIT_TIMEOUT_SEC",
        "how long to wait for an uploaded twin of a -local artifact",
        default=3600.0,
        parse=seconds_or_zero,
    ),
    EnvVar(
        "EVAL_FRAMEWORK_DOWNLOAD_STALL_SEC",
        "seconds a checkpoint read may get no byte before one retry (60)",
        default=60.0,
        parse=positive_seconds,
    ),
    EnvVar(
        "WANDB__GRAPHQL_RETRY_MAX",
        "retries of a failing W&B request in the SDK's service (the SDK's setting)",
    ),
    EnvVar("HF_TOKEN", "Hugging Face token for gated models, datasets and result uploads", secret=True),
    EnvVar("WANDB_MODE", "online, offline or disabled (the --wandb-mode default)"),
    EnvVar(
        "WANDB_ADDITIONAL_ARTIFACT_REFERENCES",
        "comma-separated artifacts every logged run also uses (lineage)",
    ),
    EnvVar("WANDB_INIT_TIMEOUT", "seconds a W&B run may take to start (the SDK's setting, default 90)"),
    EnvVar(
        "WANDB_HTTP_TIMEOUT",
        "seconds one W&B request may take: reachability check (10), registry lookup (19)",
        parse=positive_seconds,
    ),
    EnvVar("OPENAI_API_KEY", "API key for the OpenAI-compatible backend", secret=True),
    EnvVar("EVAL_FRAMEWORK_DEBUG", "1 prints full tracebacks"),
    EnvVar(
        "EVAL_FRAMEWORK_CACHE_DIR", "where content digests of checkpoint files are cached (default ~/.cache)"
    ),
    EnvVar("MLFLOW_TRACKING_URI", "MLflow tracking server for --dest mlflow (when its config gives none)"),
    EnvVar("MLFLOW_EXPERIMENT_NAME", "MLflow experiment for --dest mlflow (when its config gives none)"),
    EnvVar("MLFLOW_TRACKING_USERNAME", "MLflow server login (basic auth)"),
    EnvVar("MLFLOW_TRACKING_PASSWORD", "MLflow server password (basic auth)", secret=True),
    EnvVar("MLFLOW_TRACKING_TOKEN", "MLflow server bearer token", secret=True),
    EnvVar(
        "GOOGLE_APPLICATION_CREDENTIALS",
        "service-account key file for --dest gsheets (when its config gives no service_account_file)",
    ),
    EnvVar("EVAL_FRAMEWORK_SHEETS_API_URL", "Google Sheets/Drive API base URL (a proxy or private endpoint)"),
)
BY_NAME = {var.name: var for var in VARS}
#: Secrets read by the libraries beside ours, masked as well (not settings of this project).
OTHER_SECRETS = ("AWS_SESSION_TOKEN", "HUGGING_FACE_HUB_TOKEN")
SECRET_NAMES = tuple(var.name for var in VARS if var.secret) + OTHER_SECRETS


def get(name: str) -> Any:
    """The variable's value, read by its parser; its default when unset or blank. A value that
    does not parse is a ConfigError naming the variable and what to set."""
    var = BY_NAME[name]
    raw = os.environ.get(name, "").strip()
    if not raw:
        return var.default
    return var.parse(name, raw)
