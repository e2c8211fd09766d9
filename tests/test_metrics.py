"""Metric values on hand-computed fixtures."""

from __future__ import annotations

import math

import pytest

from eval_framework.metrics import aggregate, argmax, mean_stderr, score_multiple_choice


def test_argmax_ties_go_to_first():
    assert argmax([1.0, 3.0, 3.0]) == 1


def test_acc_and_length_normalised_acc_disagree_when_lengths_differ():
    # Totals favour the short choice; per character the long one wins: -2/1 = -2.0 vs -3/10 = -0.3.
    scored = score_multiple_choice([-2.0, -3.0], ["a", "abcdefghij"], target=1)
    assert scored["prediction"] == 0
    assert scored["acc"] == 0.0
    assert scored["prediction_norm"] == 1
    assert scored["acc_norm"] == 1.0


def test_acc_norm_is_per_character_and_acc_bytes_per_byte():
    # lm-eval: acc_norm divides by len(choice), acc_bytes by len(choice.encode("utf-8")).
    # "日本" is 2 characters, 6 bytes: per character -2.2/2 = -1.1 loses to -4/4 = -1.0,
    # per byte -2.2/6 = -0.37 wins.
    scored = score_multiple_choice([-2.2, -4.0], ["日本", "abcd"], target=1)
    assert scored["prediction_norm"] == 1
    assert scored["acc_norm"] == 1.0
    assert scored["acc_bytes"] == 0.0
    # Bundles of schema 2 and older were written with the per-byte rule; they are read with it.
    old = score_multiple_choice([-2.2, -4.0], ["日本", "abcd"], target=1, byte_norm=True)
    assert old["prediction_norm"] == 0
    assert old["acc_norm"] == 0.0


def test_an_empty_choice_is_never_preferred_by_length():
    scored = score_multiple_choice([-0.5, -3.0], ["", "abc"], target=1)
    assert scored["prediction"] == 0
    assert scored["prediction_norm"] == 1
    assert scored["acc_bytes"] == 1.0


def test_old_bundles_rows_are_checked_by_their_own_rule():
    from eval_framework.bundle_seal import scored_problem as _scored_problem

    row = {
        "choices": ["日本", "abcd"],
        "logprobs": [-2.2, -4.0],
        "target": 1,
        "prediction": 0,
        "prediction_norm": 0,  # per byte
        "scores": {"acc": 0.0, "acc_norm": 0.0},
    }
    assert _scored_problem(row, ["acc", "acc_norm"], schema_version=2) is None
    assert "prediction_norm" in (_scored_problem(row, ["acc", "acc_norm"], schema_version=3) or "")


def test_mean_stderr_by_hand():
    mean, se = mean_stderr([1.0, 0.0, 1.0, 1.0])
    # sample variance = ((.25)*3 + .5625)/3 = 0.25; se = sqrt(0.25/4) = 0.25
    assert mean == 0.75
    assert se == pytest.approx(0.25)
    assert math.isnan(mean_stderr([1.0])[1])


def test_aggregate_overall_and_subjects():
    rows = [
        {"subject": "a", "scores": {"acc": 1.0}},
        {"subject": "a", "scores": {"acc": 0.0}},
        {"subject": "b", "scores": {"acc": 1.0}},
    ]
    result = aggregate(rows, ["acc"])
    assert result["overall"]["acc"]["value"] == pytest.approx(2 / 3)
    assert result["overall"]["acc"]["n"] == 3
    assert result["overall"]["acc"]["stderr"] == pytest.approx(math.sqrt((1 / 3) / 3))
    assert result["subjects"]["a"]["acc"] == {"value": 0.5, "stderr": pytest.approx(0.5), "n": 2}
    assert result["subjects"]["b"]["acc"]["stderr"] is None  # one sample: no stderr


def test_aggregate_without_subjects_has_no_subject_block():
    assert "subjects" not in aggregate([{"subject": None, "scores": {"exact_match": 1.0}}], ["exact_match"])
