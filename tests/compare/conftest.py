"""Real bundles, evaluated once per session; tests copy what they change."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.compare.bundles import evaluate_embedded


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny-letters (3-shot, as the demo) evaluated by the shipped v0, v1, v2 on all 200 samples
    (about 30 %, 64 % and 98 %), and by v0 on 40."""
    root = tmp_path_factory.mktemp("evaluated")
    out = {v: evaluate_embedded(v, root / "main", None) for v in ("v0", "v1", "v2")}
    out["v0-40"] = evaluate_embedded("v0", root / "fewer", 40)
    return out


@pytest.fixture
def copy_bundles(tmp_path: Path, evaluated: dict[str, Path]) -> Callable[..., Path]:
    """Copies of evaluated bundles into a fresh directory (tests may damage them)."""

    def copy(*names: str, into: str = "outputs") -> Path:
        target = tmp_path / into
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copytree(evaluated[name], target / evaluated[name].name)
        return target

    return copy
