"""Checkpoint sweeps: evaluate many versions of a checkpoint on many tasks (docs/sweeps.md).

``list_versions`` and ``choose`` decide what is evaluated; ``evaluate_version`` evaluates one
version on every task with one model load (the step a watcher of new versions reuses);
``run_sweep`` runs it over the chosen versions; ``eval_framework.sweep.watch.watch`` runs it on each
version as it lands.
"""

from eval_framework.sweep.runner import (
    SweepFailed,
    SweepSummary,
    TaskResult,
    VersionResult,
    evaluate_version,
    run_sweep,
    version_configs,
)
from eval_framework.sweep.versions import Selection, Shard, Version, choose, list_versions
from eval_framework.sweep.watch_options import Until, WatchOptions

__all__ = [
    "Selection",
    "Shard",
    "SweepFailed",
    "SweepSummary",
    "TaskResult",
    "Until",
    "Version",
    "VersionResult",
    "WatchOptions",
    "choose",
    "evaluate_version",
    "list_versions",
    "run_sweep",
    "version_configs",
]
