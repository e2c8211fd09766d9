"""``--plot out.html``: one self-contained page, opened in a real headless browser."""

from __future__ import annotations

import re
import subprocess
from html import unescape
from pathlib import Path

import pytest

from eval_framework.compare import compare
from eval_framework.compare.render import number, p_text

CHROMIUM = Path("/usr/bin/chromium")
V = ("tiny-letters-v0", "tiny-letters-v1", "tiny-letters-v2")


def rendered_dom(page: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran, as headless Chromium dumps it (no network)."""
    if not CHROMIUM.is_file():
        pytest.fail(
            "/usr/bin/chromium is missing: install Debian's 'chromium' package (./dev test installs it)"
        )
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_html_chart_in_a_real_browser(cli, copy_bundles, tmp_path):
    out = copy_bundles("v0", "v1", "v2")
    page = tmp_path / "compare.html"
    result = cli("compare", out, "--plot", page)
    assert result.code == 0, result.err
    source = page.read_text()
    # self-contained: nothing fetched (the only URL is the SVG namespace, which is never fetched)
    assert re.findall(r"https?://[^\"' ]+", source) == ["http://www.w3.org/2000/svg"] * source.count("<svg")
    assert "<link" not in source
    assert " src=" not in source
    dom = rendered_dom(page, tmp_path / "profile")
    assert 'data-ready="1"' in dom  # the inline script ran
    sections = re.findall(
        r'<section class="metric" data-task="tiny-letters" data-metric="(\w+)">(.*?)</section>', dom, re.S
    )
    assert [name for name, _ in sections] == ["acc", "acc_norm"]
    comparison = compare([out])
    for metric, html in sections:
        assert len(re.findall(r"<svg ", html)) == 1
        assert len(re.findall(r'<polygon class="band"', html)) == 1
        assert len(re.findall(r'<polyline class="line"', html)) == 1
        points = re.findall(
            r'<circle class="point"[^>]*data-version="([^"]+)"[^>]*>\s*<title>([^<]+)</title>', html
        )
        assert [v for v, _ in points] == list(V)
        for version, escaped in points:
            tooltip = unescape(escaped)
            stats = comparison.cell(version, "tiny-letters").metrics[metric]  # type: ignore[union-attr]
            assert tooltip.startswith(f"{version}: {number(stats.mean, True)}%")
            assert f"n={stats.n}" in tooltip
            test = comparison.find(version, "tiny-letters", metric)
            if test is not None and test.result is not None:
                assert (
                    f"vs {test.baseline}: {number(test.result.difference, True, signed=True)} pp" in tooltip
                )
                assert f"p={p_text(test.result.p_value)}" in tooltip
        rows = re.findall(r'<tr data-version="([^"]+)">(.*?)</tr>', html, re.S)
        assert [v for v, _ in rows] == list(V)
        cells = [unescape(c) for c in re.findall(r"<td>([^<]*)</td>", rows[1][1])]
        stats = comparison.cell(V[1], "tiny-letters").metrics[metric]  # type: ignore[union-attr]
        assert cells[:2] == [V[1], number(stats.mean, True)]
        assert cells[5] == str(stats.n)
        assert cells[6] == V[0]


def test_a_single_version_and_a_non_percent_metric(evaluated, tmp_path):
    from eval_framework.compare.plot_html import render_html
    from tests.compare.bundles import margin, restamp

    restamp(evaluated["v1"], tmp_path / "out" / "b", model_name="only-one", extra_metric=margin)
    html = render_html(compare([tmp_path / "out"]))
    assert html.count('<rect class="band"') == 3  # one version: its interval as a bar, per metric
    assert '<polygon class="band"' not in html
    section = html.split('data-metric="margin"')[1]
    assert "(%)" not in section.split("</section>")[0]  # margin is not an accuracy
