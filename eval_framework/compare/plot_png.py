"""``--plot out.png``: one panel per task and metric, its mean across versions with a confidence
band. matplotlib (the ``plot`` extra) is imported only here, and only when asked for."""

from __future__ import annotations

import io
import math
from pathlib import Path

from eval_framework.compare.build import Comparison
from eval_framework.compare.plot_data import series, write_bytes_atomically
from eval_framework.errors import ConfigError, missing_extra


def render_png(comparison: Comparison) -> bytes:
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)  # no display on a cluster node
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise missing_extra("matplotlib", "plot", ConfigError) from exc
    panels = series(comparison)
    cols = min(2, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    width = max(6.0, 0.45 * max((len(s.points) for s in panels), default=1) + 3)
    figure = Figure(figsize=(width * cols, 3.6 * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    for index, panel in enumerate(panels):
        ax = axes[index // cols][index % cols]
        scale = 100.0 if panel.percent else 1.0
        xs = list(range(len(panel.points)))
        ax.fill_between(xs, [p.low * scale for p in panel.points], [p.high * scale for p in panel.points],
                        alpha=0.25, color="tab:blue", linewidth=0,
                        label=f"{comparison.confidence:.0%} CI")  # fmt: skip
        ax.plot(xs, [p.mean * scale for p in panel.points], marker="o", color="tab:blue", label="mean")
        ax.set_xticks(
            xs,
            [p.version for p in panel.points],
            rotation=45 if len(xs) > 8 else 0,
            ha="right" if len(xs) > 8 else "center",
        )
        ax.set_title(panel.title)
        ax.set_ylabel(f"{panel.metric} (%)" if panel.percent else panel.metric)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    for index in range(len(panels), rows * cols):
        axes[index // cols][index % cols].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_png(comparison: Comparison, path: Path) -> None:
    write_bytes_atomically(path, render_png(comparison))
