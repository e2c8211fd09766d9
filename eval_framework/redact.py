"""Keep secrets out of bundles, logs and messages."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"
_SECRET_KEY = re.compile(r"(key|token|secret|password|passwd|credential|authorization)", re.IGNORECASE)
#: Environment variables whose values are secrets wherever they appear.
SECRET_ENV_VARS = (
    "WANDB_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "OPENAI_API_KEY",
)


def is_secret_key(name: str) -> bool:
    return bool(_SECRET_KEY.search(name))


def redact(value: Any) -> Any:
    """Return a copy of a JSON-like value with secret-named keys masked and secret values scrubbed."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def _secret_values() -> list[str]:
    values = [os.environ.get(name, "") for name in SECRET_ENV_VARS]
    return sorted({v for v in values if len(v) >= 6}, key=len, reverse=True)


def scrub(text: str) -> str:
    """Replace the values of known secret environment variables inside free text."""
    for secret in _secret_values():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class ScrubFilter(logging.Filter):
    """Logging filter that scrubs secret values from every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
