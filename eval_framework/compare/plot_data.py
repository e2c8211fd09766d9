"""What both plots draw: each numeric metric of each task across versions, with its confidence band
(mean ± z · stderr, the normal interval of each version's own mean)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

from eval_framework.compare.build import Comparison
from eval_framework.compare.render import is_percent
from eval_framework.errors import ConfigError, OutputError

PLOT_KINDS = (".png", ".html")


@dataclass(frozen=True)
class Point:
    version: str
    mean: float
    low: float
    high: float
    stderr: float | None
    n: int
    #: against the baseline: difference, p-value and which baseline (None: not tested)
    difference: float | None = None
    p_value: float | None = None
    baseline: str | None = None


@dataclass(frozen=True)
class Series:
    task: str
    metric: str
    percent: bool
    points: list[Point]

    @property
    def title(self) -> str:
        return f"{self.task} / {self.metric}"


def series(comparison: Comparison) -> list[Series]:
    """One series per task and numeric metric, in version order."""
    z = NormalDist().inv_cdf(0.5 + comparison.confidence / 2)
    out: list[Series] = []
    for task in comparison.tasks:
        for metric in comparison.metrics[task]:
            points = []
            for label in comparison.labels:
                evaluation = comparison.cell(label, task)
                stats = evaluation.metrics.get(metric) if evaluation else None
                if stats is None or not isinstance(stats.mean, float | int):
                    continue
                half = z * stats.stderr if stats.stderr is not None else 0.0
                test = comparison.find(label, task, metric)
                result = test.result if test else None
                points.append(
                    Point(
                        label, float(stats.mean), float(stats.mean) - half, float(stats.mean) + half,
                        stats.stderr, stats.n, result.difference if result else None,
                        result.p_value if result else None, test.baseline if test else None,
                    )
                )  # fmt: skip
            if points:
                out.append(Series(task, metric, is_percent(comparison, task, metric), points))
    return out


def check_plot_path(path: Path) -> str:
    """The plot's kind from its extension, and a writable place for it: said before any work."""
    kind = path.suffix.lower()
    if kind not in PLOT_KINDS:
        raise ConfigError(
            f"--plot {path}: unknown extension {path.suffix or '(none)'!r}; name a .png (needs the plot "
            "extra) or a .html file"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(
            f"--plot {path} is a directory; pass a file path such as {path / ('compare' + kind)}"
        )
    if parent.exists() and not parent.is_dir():
        raise OutputError(
            f"cannot write --plot {path}: {parent} is a file, not a directory; pick another path"
        )
    if not parent.is_dir():
        raise OutputError(
            f"cannot write --plot {path}: the directory {parent} does not exist; create it or pick another "
            "path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write --plot {path}: {parent} is not writable; pick a writable path")
    try:  # a real try: root passes os.access, and some file systems refuse anyway (/sys, read-only mounts)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".plot-check-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write --plot {path}: {exc.strerror or exc}; pick a writable path") from exc
    if kind == ".png":
        import importlib.util

        from eval_framework.errors import missing_extra

        if importlib.util.find_spec("matplotlib") is None:
            raise missing_extra("matplotlib", "plot", ConfigError)
    return kind


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """The plot appears whole or not at all (a temporary file beside it, then renamed)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(f"cannot write --plot {path}: {exc.strerror or exc}; pick a writable path") from exc
