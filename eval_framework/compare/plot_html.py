"""``--plot out.html``: one self-contained page (inline SVG, CSS and a few lines of inline script;
nothing fetched), so it can be attached to a pull request or opened on an offline cluster.

Each task and metric gets a chart (the mean across versions, its confidence band, a point per
version whose tooltip gives the numbers) and a table with every number the chart shows.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from eval_framework.compare.build import Comparison
from eval_framework.compare.plot_data import Point, Series, series, write_bytes_atomically
from eval_framework.compare.render import number, p_text

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 20, 60

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
section { margin-bottom: 40px; }
svg .band { fill: #1f77b4; fill-opacity: 0.2; stroke: none; }
svg .line { fill: none; stroke: #1f77b4; stroke-width: 2; }
svg .point { fill: #1f77b4; stroke: white; stroke-width: 1.5; cursor: pointer; }
svg .point.active { fill: #d62728; }
svg .axis { stroke: #888; stroke-width: 1; }
svg .grid { stroke: #ddd; stroke-width: 1; }
svg text { font-size: 11px; fill: #444; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
tr.active { background: #fde2e2; }
.readout { min-height: 1.4em; font-size: 13px; color: #333; }
"""

# Hovering a point shows its numbers under the chart and marks its row in the table (the SVG
# <title> tooltip works without script as well).
_SCRIPT = """
document.querySelectorAll("section.metric").forEach(function (section) {
  var readout = section.querySelector(".readout");
  section.querySelectorAll(".point").forEach(function (point) {
    point.addEventListener("mouseenter", function () {
      readout.textContent = point.getAttribute("data-summary");
      section.querySelectorAll(".active").forEach(function (e) { e.classList.remove("active"); });
      point.classList.add("active");
      var version = CSS.escape(point.getAttribute("data-version"));
      var row = section.querySelector('tr[data-version="' + version + '"]');
      if (row) { row.classList.add("active"); }
    });
  });
});
document.body.setAttribute("data-ready", "1");
"""


def _summary(point: Point, panel: Series, confidence: float) -> str:
    pct = panel.percent
    text = (
        f"{point.version}: {number(point.mean, pct)}{'%' if pct else ''} "
        f"({confidence:.0%} CI {number(point.low, pct)} to {number(point.high, pct)}, n={point.n})"
    )
    if point.difference is not None:
        diff = number(point.difference, pct, signed=True) + (" pp" if pct else "")
        text += f"; vs {point.baseline}: {diff}, p={p_text(point.p_value)}"
    return text


def _ticks(low: float, high: float) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    raw = (high - low) / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    count = math.ceil((high - first) / step - 1e-9)
    return [round(first + k * step, 10) for k in range(count + 1)]


def _chart(panel: Series, confidence: float) -> str:
    scale = 100.0 if panel.percent else 1.0
    lows = [p.low * scale for p in panel.points]
    highs = [p.high * scale for p in panel.points]
    y_min, y_max = min(lows), max(highs)
    if y_max - y_min < 1e-9:
        y_min, y_max = y_min - 1, y_max + 1
    pad = (y_max - y_min) * 0.08
    y_min, y_max = y_min - pad, y_max + pad
    if panel.percent:
        y_min, y_max = max(0.0, y_min), min(100.0, y_max)
    ticks = _ticks(y_min, y_max)
    y_min, y_max = min(y_min, ticks[0]), max(y_max, ticks[-1])
    count = len(panel.points)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * (i + 0.5) / count)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - y_min) / (y_max - y_min))

    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(panel.title)}">']  # fmt: skip
    for value in ticks:
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
        )
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:g}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}"/>')
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>'
    )
    band = [f"{x(i):.1f},{y(h):.1f}" for i, h in enumerate(highs)]
    band += [f"{x(i):.1f},{y(lo):.1f}" for i, lo in reversed(list(enumerate(lows)))]
    if count > 1:
        parts.append(f'<polygon class="band" points="{" ".join(band)}"/>')
    else:  # one version: its interval as a bar
        parts.append(f'<rect class="band" x="{x(0) - 8:.1f}" y="{y(highs[0]):.1f}" width="16" '
                     f'height="{max(0.5, y(lows[0]) - y(highs[0])):.1f}"/>')  # fmt: skip
    line = " ".join(f"{x(i):.1f},{y(p.mean * scale):.1f}" for i, p in enumerate(panel.points))
    parts.append(f'<polyline class="line" points="{line}"/>')
    rotate = count > 8
    for i, point in enumerate(panel.points):
        summary = escape(_summary(point, panel, confidence))
        parts.append(
            f'<circle class="point" cx="{x(i):.1f}" cy="{y(point.mean * scale):.1f}" r="5" '
            f'data-version="{escape(point.version)}" data-mean="{point.mean!r}" data-summary="{summary}">'
            f"<title>{summary}</title></circle>"
        )
        label_y = TOP + plot_h + 16
        transform = f' transform="rotate(-40 {x(i):.1f} {label_y})"' if rotate else ""
        anchor = "end" if rotate else "middle"
        parts.append(
            f'<text class="version" x="{x(i):.1f}" y="{label_y}" text-anchor="{anchor}"{transform}>'
            f"{escape(point.version)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(panel: Series, confidence: float) -> str:
    pct = panel.percent
    unit = " (%)" if pct else ""
    head = (
        f"<tr><th>version</th><th>mean{unit}</th><th>{confidence:.0%} CI low</th>"
        f"<th>{confidence:.0%} CI high</th>"
        f"<th>stderr</th><th>n</th><th>baseline</th><th>Δ{' (pp)' if pct else ''}</th><th>p</th></tr>"
    )
    body = []
    for p in panel.points:
        cells = [p.version, number(p.mean, pct), number(p.low, pct), number(p.high, pct),
                 number(p.stderr, pct), str(p.n), p.baseline or "-", number(p.difference, pct, signed=True),
                 p_text(p.p_value)]  # fmt: skip
        body.append(
            f'<tr data-version="{escape(p.version)}">'
            + "".join(f"<td>{escape(c)}</td>" for c in cells)
            + "</tr>"
        )
    return f'<table class="numbers">{head}{"".join(body)}</table>'


def render_html(comparison: Comparison) -> str:
    sections = []
    for panel in series(comparison):
        sections.append(
            f'<section class="metric" data-task="{escape(panel.task)}" data-metric="{escape(panel.metric)}">'
            f"<h2>{escape(panel.title)}</h2>{_chart(panel, comparison.confidence)}"
            f'<div class="readout"></div>{_table(panel, comparison.confidence)}</section>'
        )
    against = (
        f"against {comparison.baseline}" if comparison.baseline else "each version against its predecessor"
    )
    notes = "".join(f"<li>{escape(w)}</li>" for w in comparison.warnings)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>eval_framework compare</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Versions compared</h1><p>Bands: {comparison.confidence:.0%} confidence interval of each "
        f"version's mean. Δ and p: paired tests {escape(against)} on shared samples (McNemar's exact test "
        "for accuracy, paired bootstrap otherwise).</p>"
        + (f'<ul class="warnings">{notes}</ul>' if notes else "")
        + "".join(sections)
        + f"<script>{_SCRIPT}</script></body></html>\n"
    )


def write_html(comparison: Comparison, path: Path) -> None:
    write_bytes_atomically(path, render_html(comparison).encode("utf-8"))
