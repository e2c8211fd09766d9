"""Installing a tiny export-destination plugin for a test: a module and its distribution's entry
point, on sys.path, as pip would leave them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from eval_framework.sinks import registry


@contextmanager
def installed_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, entry_point: str
) -> Iterator[None]:
    """``entry_point``: ``name = module:Class``."""
    site = tmp_path / f"site-{module}"
    site.mkdir()
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{entry_point}\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        yield
    finally:
        sys.modules.pop(module, None)
