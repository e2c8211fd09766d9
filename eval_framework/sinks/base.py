"""What every export destination implements, and what one export of one bundle came to.

A sink is built from its validated config, checked once before anything is sent (``preflight``:
credentials, reachability, a writable folder), then given finished bundles one at a time. Its
identity for a bundle comes from the evaluation, so an export done twice updates one record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

from eval_framework.bundle_io import canonical_json
from eval_framework.bundle_schema import MetricStats, ResultsFile
from eval_framework.results import Bundle

#: created: the destination had no record of this evaluation; updated: its record changed;
#: unchanged: the record already holds these results (pass --force to send them again).
Status = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class Exported:
    """One bundle's export to one destination."""

    destination: str
    bundle: Path
    status: Status
    location: str  #: where the record is (a file, a run URL)


class Sink(Protocol):
    """An export destination (built-in, or a plugin registered under the ``eval_framework.sinks``
    entry point group)."""

    #: The name users pass to --dest.
    name: ClassVar[str]
    #: The config keys the sink takes, as a pydantic model (unknown keys are refused).
    Config: ClassVar[type[BaseModel]]

    def __init__(self, config: Any) -> None:
        """``config``: an instance of ``Config``, validated."""
        ...

    def preflight(self) -> None:
        """Raise a ConfigError (or ExportError) now if exporting cannot work, before any model
        loads or anything is sent."""
        ...

    def publish(self, bundle: Bundle, force: bool = False) -> Exported:
        """Export one finished bundle; ``force``: send it even when the destination holds it."""
        ...


def checkpoint_version_key(bundle: Bundle, group: str | None = None) -> str:
    """``log_mode: multi_task``: what the one record per checkpoint version (and group) is keyed
    by, 64 hex digits. Bundles of the same model (registry version and digest, or class and
    arguments) in the same group share it, whatever their task and settings."""
    identity = bundle.metadata().model.identity.model_dump(mode="json")
    text = canonical_json({"model": identity, "group": group or ""})
    return hashlib.sha256(text.encode()).hexdigest()


def wanted(name: str, patterns: Sequence[str]) -> bool:
    """``log_metrics``: a metric is exported when its name contains one of the patterns (all
    metrics when there are none); its stderr and n go with it."""
    return not patterns or any(p in name for p in patterns)


def metric_columns(results: ResultsFile, patterns: Sequence[str]) -> dict[str, Any]:
    """The overall metrics as flat columns: ``<metric>``, ``<metric>_stderr``, ``<metric>_n``."""
    columns: dict[str, Any] = {}
    for name, stats in sorted(results.metrics.overall.items()):
        if wanted(name, patterns):
            columns.update(_stat_columns(name, stats))
    return columns


def _stat_columns(name: str, stats: MetricStats) -> dict[str, Any]:
    return {name: stats.value, f"{name}_stderr": stats.stderr, f"{name}_n": stats.n}
