"""Checkpoint sweeps: evaluate many versions of a checkpoint on many tasks (docs/sweeps.md).

``list_versions`` and ``choose`` decide what is evaluated; ``evaluate_version`` evaluates one
version on every task with one model load (the step a watcher of new versions reuses);
``run_sweep`` runs it over the chosen versions.
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

__all__ = [
    "Selection",
    "Shard",
    "SweepFailed",
    "SweepSummary",
    "TaskResult",
    "Version",
    "VersionResult",
    "choose",
    "evaluate_version",
    "list_versions",
    "run_sweep",
    "version_configs",
]
