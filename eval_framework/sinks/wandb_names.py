"""W&B's name limits, applied before any call: the server checks them only at sync time.

Shortening is deterministic (a hash of the full text is kept), so the same evaluation always
gets the same names and two long names that differ only at the end stay distinct.
"""

from __future__ import annotations

import hashlib
import re

GROUP_MAX = 128
JOB_TYPE_MAX = 64
RUN_NAME_MAX = 128
ARTIFACT_NAME_MAX = 128
TAG_MAX = 64
_ARTIFACT_CHARS = re.compile(r"[^A-Za-z0-9_\-.]+")


def shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[: limit - 9]}~{digest}"


def artifact_name(text: str) -> str:
    """Only letters, digits, '-', '_' and '.'; at most 128 characters."""
    cleaned = _ARTIFACT_CHARS.sub("-", text).strip("-.") or "eval"
    if len(cleaned) <= ARTIFACT_NAME_MAX:
        return cleaned
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{cleaned[: ARTIFACT_NAME_MAX - 9]}-{digest}"


def metric_key(name: str) -> str:
    """Summary-key form of a metric name: lm-eval style ',none' filters dropped, other
    separators and spaces folded to '_'."""
    name = re.sub(r",none$", "", name.strip())
    return re.sub(r"[\s,]+", "_", name)


def tag(text: str) -> str:
    return shorten(text.strip(), TAG_MAX)
