"""``watch``'s options: ``--interval`` and ``--until`` parsed, and how a watch runs."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from eval_framework.errors import ConfigError
from eval_framework.sweep.versions import Selection

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$", re.I)
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_VERSION = re.compile(r"^v(\d+)$")


def parse_duration(text: str, option: str) -> float:
    """Seconds in ``30s``, ``10m``, ``1h``, ``2d`` or a plain number of seconds (``0.5``)."""
    match = _DURATION.match(text or "")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()] if match else 0.0
    if seconds <= 0:
        raise ConfigError(f"invalid {option} {text!r}: give a duration above 0 such as 30s, 10m or 1h "
                          "(a plain number is seconds)")  # fmt: skip
    return seconds


@dataclass(frozen=True)
class Until:
    """``--until``: stop at a time (``deadline``, seconds since the epoch) or once version ``vN``
    is evaluated (``version``)."""

    deadline: float | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str | None, now: float | None = None) -> Until | None:
        """A duration (``8h``), an ISO time (``2026-12-06T08:00``, local time unless it has an
        offset) or a version (``v12``)."""
        if text is None:
            return None
        value, now = text.strip(), time.time() if now is None else now
        number = _VERSION.match(value)
        if number:
            return cls(version=int(number.group(1)))
        if _DURATION.match(value):
            return cls(deadline=now + parse_duration(value, "--until"))
        try:
            deadline = datetime.fromisoformat(value).timestamp()
        except ValueError:
            raise ConfigError(
                f"invalid --until {text!r}: give a duration (8h, 30m), an ISO time "
                "(2026-12-06T08:00, local time unless it has an offset) or a version (v12)"
            ) from None
        if deadline <= now:
            raise ConfigError(f"--until {text!r} has already passed; give a time in the future")
        return cls(deadline=deadline)


@dataclass(frozen=True)
class WatchOptions:
    """How a watch runs: poll every ``interval`` seconds until ``until``, over the versions
    ``selection`` keeps; claims under ``claims_root`` (default: ``<output dir>/.claims``); a
    failing version is tried ``max_attempts`` times in all."""

    interval: float = 600.0
    until: Until | None = None
    selection: Selection = field(default_factory=lambda: Selection("all"))
    claims_root: Path | None = None
    max_attempts: int | None = None  #: None: MAX_ATTEMPTS
