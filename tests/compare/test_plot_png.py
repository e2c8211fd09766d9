"""``--plot out.png``: a real image with a panel per task and metric; a clear error without matplotlib."""

from __future__ import annotations

import builtins
import importlib.util

from PIL import Image, ImageStat


def test_png_is_drawn(cli, copy_bundles, tmp_path):
    target = tmp_path / "compare.png"
    result = cli("compare", copy_bundles("v0", "v1", "v2"), "--plot", target)
    assert result.code == 0, result.err
    with Image.open(target) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= 1000
        assert height >= 300
        rgb = image.convert("RGB")
        assert len(rgb.getcolors(maxcolors=1 << 16) or []) > 50  # lines, band, text: not blank
        assert max(ImageStat.Stat(rgb).stddev) > 10
        # the confidence band's light blue and the line's blue are drawn
        colors = {c for _, c in rgb.getcolors(maxcolors=1 << 16) or []}
        assert (31, 119, 180) in colors  # matplotlib's tab:blue, the mean line


def test_without_matplotlib_the_error_names_the_extra(cli, copy_bundles, tmp_path, monkeypatch):
    real_find_spec, real_import = importlib.util.find_spec, builtins.__import__

    def find_spec(name, *args, **kwargs):
        return None if name == "matplotlib" else real_find_spec(name, *args, **kwargs)

    def guarded_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(builtins, "__import__", guarded_import)
    result = cli("compare", copy_bundles("v0", "v1"), "--plot", tmp_path / "c.png")
    assert result.code == 2, result.err
    assert "pip install 'eval_framework[plot]'" in result.err
    assert result.out == ""  # said before any work
    assert not (tmp_path / "c.png").exists()


def test_the_png_module_itself_says_so_when_matplotlib_is_missing(copy_bundles, monkeypatch):
    import pytest

    from eval_framework.compare import compare
    from eval_framework.compare.plot_png import render_png
    from eval_framework.errors import ConfigError

    comparison = compare([copy_bundles("v0", "v1")])
    real_import = builtins.__import__

    def guarded_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded_import)
    with pytest.raises(ConfigError, match=r"pip install 'eval_framework\[plot\]'"):
        render_png(comparison)
