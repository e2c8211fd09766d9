"""Metric values on hand-computed fixtures."""

from __future__ import annotations

import math

import pytest

from eval_framework.metrics import aggregate, argmax, mean_stderr, score_multiple_choice


def test_argmax_ties_go_to_first():
    assert argmax([1.0, 3.0, 3.0]) == 1


def test_acc_and_length_normalised_acc_disagree_when_lengths_differ():
    # Totals favour the short choice; per-byte the long one wins: -2/1 = -2.0 vs -3/10 = -0.3.
    scored = score_multiple_choice([-2.0, -3.0], ["a", "abcdefghij"], target=1)
    assert scored["prediction"] == 0 and scored["acc"] == 0.0
    assert scored["prediction_norm"] == 1 and scored["acc_norm"] == 1.0


def test_mean_stderr_by_hand():
    mean, se = mean_stderr([1.0, 0.0, 1.0, 1.0])
    # sample variance = ((.25)*3 + .5625)/3 = 0.25; se = sqrt(0.25/4) = 0.25
    assert mean == 0.75 and se == pytest.approx(0.25)
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
