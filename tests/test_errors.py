"""Other libraries' exception text in our one-line messages."""

from __future__ import annotations

from eval_framework.errors import brief


def test_brief_collapses_lines_and_whitespace():
    exc = RuntimeError("first line\n  second\tline\n\n")
    assert brief(exc) == "first line second line"
    assert brief(exc, with_type=True) == "RuntimeError: first line second line"


def test_brief_cuts_long_text_and_names_silent_exceptions():
    cut = brief(ValueError("head " + "x" * 1000 + " the real cause"), limit=50)
    assert cut.startswith("head ")
    assert cut.endswith("the real cause")
    assert " … " in cut
    assert len(cut) <= 50
    assert brief(KeyError()) == "KeyError"
    assert brief(ValueError("   "), with_type=True) == "ValueError"


def test_brief_scrubs_before_it_cuts(monkeypatch):
    secret = "s3cr3t-" + "v" * 40
    monkeypatch.setenv("WANDB_API_KEY", secret)
    text = brief(RuntimeError("x" * 30 + " api_key=" + secret), limit=60)
    assert "s3cr3t" not in text
    assert "***" in text


def test_an_export_error_is_made_of_fields_and_its_line_of_them():
    from pathlib import Path

    from eval_framework.errors import ExportError, HfUploadError, WandbLogError

    wandb = WandbLogError("connection refused", sink="W&B", what="W&B run start", hint="check WANDB_BASE_URL",
                          retried=True, logged=("config",))  # fmt: skip
    assert str(wandb) == (
        "W&B run start failed after retries: connection refused; check WANDB_BASE_URL "
        "(logged before that: config)"
    )
    assert (wandb.sink, wandb.what, wandb.why, wandb.hint) == (
        "W&B",
        "W&B run start",
        "connection refused",
        "check WANDB_BASE_URL",
    )
    hf = HfUploadError("no token; set HF_TOKEN", sink="Hugging Face")  # says what failed itself
    assert str(hf) == hf.problem() == "no token; set HF_TOKEN"
    assert hf.failures == ()
    one = ExportError.gathered([hf, wandb], "eval_framework upload b", bundle=Path("b"))
    assert one.failures == (hf, wandb)
    assert one.bundle == Path("b")
    assert one.command == "eval_framework upload b"
    assert str(one) == (
        f"{hf}; {wandb}. The evaluation itself is complete in b; "
        "finish the export with: eval_framework upload b"
    )
    several = ExportError.gathered(
        [one, ExportError("x", sink="W&B", what="W&B config")], "eval_framework upload b c"
    )
    assert [f.sink for f in several.failures] == ["Hugging Face", "W&B", "W&B"]  # one level, never nested
    assert str(several).startswith(
        f"{one.problem()}; W&B config failed: x. The evaluations themselves are complete;"
    )
    assert several.exit_code == 7


def test_an_export_error_keeps_its_fields_through_a_pickle():
    import pickle

    from eval_framework.errors import ExportError, WandbLogError

    leaf = WandbLogError("refused", sink="W&B", what="W&B summary", logged=())
    gathered = ExportError.gathered([leaf], "eval_framework upload b")
    copy = pickle.loads(pickle.dumps(gathered))
    assert str(copy) == str(gathered)
    assert copy.command == gathered.command
    assert [(f.sink, f.what, f.why, f.logged) for f in copy.failures] == [
        ("W&B", "W&B summary", "refused", ())
    ]
    assert type(copy.failures[0]) is WandbLogError
