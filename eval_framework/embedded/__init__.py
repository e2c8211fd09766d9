"""Files shipped inside the package: the tiny-letters task and its trained checkpoints.

They make the quick start a real evaluation with no network: ``scripts/train_tiny_model.py``
regenerates every file here deterministically.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = ROOT / "checkpoints" / "tiny-letters"
TASKS = ROOT / "tasks"
DATA = ROOT / "data"


def checkpoint_versions() -> list[str]:
    """Shipped versions, oldest first (``v0`` is the untrained initialisation)."""
    if not CHECKPOINTS.is_dir():
        return []
    return sorted(
        (p.name for p in CHECKPOINTS.iterdir() if (p / "config.json").is_file()),
        key=lambda v: int(v.lstrip("v")),
    )


def checkpoint_dir(version: str) -> Path:
    return CHECKPOINTS / version


def embedded_task_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(TASKS.glob("*.yaml"))}
