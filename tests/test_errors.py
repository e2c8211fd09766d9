"""Other libraries' exception text in our one-line messages."""

from __future__ import annotations

from eval_framework.errors import brief


def test_brief_collapses_lines_and_whitespace():
    exc = RuntimeError("first line\n  second\tline\n\n")
    assert brief(exc) == "first line second line"
    assert brief(exc, with_type=True) == "RuntimeError: first line second line"


def test_brief_cuts_long_text_and_names_silent_exceptions():
    cut = brief(ValueError("head " + "x" * 1000 + " the real cause"), limit=50)
    assert cut.startswith("head ") and cut.endswith("the real cause") and " … " in cut and len(cut) <= 50
    assert brief(KeyError()) == "KeyError"
    assert brief(ValueError("   "), with_type=True) == "ValueError"


def test_brief_scrubs_before_it_cuts(monkeypatch):
    secret = "s3cr3t-" + "v" * 40
    monkeypatch.setenv("WANDB_API_KEY", secret)
    text = brief(RuntimeError("x" * 30 + " api_key=" + secret), limit=60)
    assert "s3cr3t" not in text and "***" in text
