"""The paired tests against hand-computed values and against scipy's and statsmodels' own."""

from __future__ import annotations

import math
import random

import pytest
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar

from eval_framework.compare import stats
from eval_framework.compare.stats import (
    binomial_two_sided_half,
    bonett_price_interval,
    mcnemar_exact,
    paired_bootstrap,
    paired_test,
)


def _pairs(cand_only: int, base_only: int, both: int, neither: int) -> tuple[list[float], list[float]]:
    cand = [1.0] * cand_only + [0.0] * base_only + [1.0] * both + [0.0] * neither
    base = [0.0] * cand_only + [1.0] * base_only + [1.0] * both + [0.0] * neither
    return cand, base


def test_binomial_hand_computed():
    # n = 10, k = 2: P(X <= 2) = (1 + 10 + 45) / 1024, doubled
    assert binomial_two_sided_half(2, 10) == pytest.approx(2 * 56 / 1024, rel=1e-15)
    assert binomial_two_sided_half(8, 10) == binomial_two_sided_half(2, 10)  # symmetric
    assert binomial_two_sided_half(5, 10) == 1.0
    assert binomial_two_sided_half(0, 0) == 1.0
    assert binomial_two_sided_half(0, 1) == 1.0  # 2 * 1/2
    with pytest.raises(ValueError, match="need 0 <= k <= n"):
        binomial_two_sided_half(3, 2)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 25, 60, 151, 1000])
def test_binomial_agrees_with_scipy_for_every_k(n):
    for k in range(n + 1):
        assert binomial_two_sided_half(k, n) == pytest.approx(
            binomtest(k, n, 0.5).pvalue, rel=1e-9, abs=1e-300
        )


@pytest.mark.parametrize(
    ("k", "n"), [(0, 30), (3, 30), (14, 30), (450, 1000), (20_480, 41_000), (200, 25_000)]
)
def test_the_log_space_path_agrees_with_scipy(k, n, monkeypatch):
    monkeypatch.setattr(stats, "EXACT_LIMIT", 0)  # force the path taken for many discordant pairs
    expected = binomtest(k, n, 0.5).pvalue
    got = binomial_two_sided_half(k, n)
    if expected > 1e-280:
        assert got == pytest.approx(expected, rel=1e-9)
    else:
        assert got < 1e-280


@pytest.mark.parametrize(
    "cells", [(0, 0, 5, 5), (1, 0, 10, 3), (5, 1, 30, 14), (13, 7, 50, 30), (40, 12, 100, 48), (3, 3, 2, 2)]
)
def test_mcnemar_agrees_with_statsmodels(cells):
    cand_only, base_only, both, neither = cells
    cand, base = _pairs(*cells)
    result = mcnemar_exact(cand, base)
    # rows: baseline right / wrong; columns: candidate right / wrong
    table = [[both, base_only], [cand_only, neither]]
    assert result.p_value == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
    assert result.test == "mcnemar_exact"
    assert (result.candidate_only, result.baseline_only) == (cand_only, base_only)
    n = sum(cells)
    assert result.n_shared == n
    assert result.difference == pytest.approx((cand_only - base_only) / n)
    assert result.candidate_mean == pytest.approx((cand_only + both) / n)
    assert result.baseline_mean == pytest.approx((base_only + both) / n)
    assert result.ci_low <= result.ci_high


def test_bonett_price_interval_by_hand():
    # n = 100 pairs, 15 right only for the candidate, 5 only for the baseline:
    # p_c = 16/102, p_b = 6/102, centre = 10/102, var = (22/102 - (10/102)^2) / 102
    low, high = bonett_price_interval(15, 5, 100, 0.95)
    centre = 10 / 102
    half = 1.959963984540054 * math.sqrt((22 / 102 - (10 / 102) ** 2) / 102)
    assert (low, high) == (pytest.approx(centre - half, abs=1e-12), pytest.approx(centre + half, abs=1e-12))
    assert (low, high) == (pytest.approx(0.0099424, abs=1e-7), pytest.approx(0.1861360, abs=1e-7))
    # a wider level gives a wider interval; all discordant pairs one way stays inside [-1, 1]
    wide = bonett_price_interval(15, 5, 100, 0.99)
    assert wide[0] < low
    assert wide[1] > high
    assert bonett_price_interval(0, 10, 10)[0] >= -1.0


def test_bonett_price_covers_near_the_nominal_level():
    """Seeded simulation: a sound interval covers the true difference about 95 % of the time."""
    rng = random.Random(7)
    p_cand_only, p_base_only, n, trials = 0.12, 0.05, 80, 2000
    truth = p_cand_only - p_base_only
    covered = 0
    for _ in range(trials):
        draws = [rng.random() for _ in range(n)]
        c = sum(1 for u in draws if u < p_cand_only)
        b = sum(1 for u in draws if p_cand_only <= u < p_cand_only + p_base_only)
        low, high = bonett_price_interval(c, b, n)
        covered += low <= truth <= high
    assert 0.93 <= covered / trials <= 0.975


def test_bootstrap_is_seeded_and_sound():
    rng = random.Random(1)
    base = [rng.gauss(0, 1) for _ in range(200)]
    cand = [b + 0.5 + rng.gauss(0, 0.5) for b in base]
    first = paired_bootstrap(cand, base, resamples=2000, seed=3)
    assert first == paired_bootstrap(cand, base, resamples=2000, seed=3)
    assert first != paired_bootstrap(cand, base, resamples=2000, seed=4)
    assert first.test == "paired_bootstrap"
    assert first.difference == pytest.approx(sum(c - b for c, b in zip(cand, base, strict=True)) / 200)
    assert first.ci_low < first.difference < first.ci_high
    # the paired standard error of the mean difference, about 0.5 / sqrt(200): the interval is near
    # mean +- 1.96 se
    diffs = [c - b for c, b in zip(cand, base, strict=True)]
    mean = sum(diffs) / len(diffs)
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
    assert first.ci_high - first.ci_low == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert first.p_value == pytest.approx(1 / 2001)  # no resample anywhere near 0


def test_bootstrap_without_a_difference():
    values = [0.1, 0.7, 0.3, 0.9, 0.5]
    same = paired_bootstrap(values, values, resamples=500)
    assert (same.difference, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    shift = paired_bootstrap([v + 0.25 for v in values], values, resamples=500)
    assert shift.difference == pytest.approx(0.25)
    assert shift.ci_low == pytest.approx(0.25)
    assert shift.ci_high == pytest.approx(0.25)


def test_paired_test_pairs_by_key_and_picks_the_test():
    cand = {"a": 1.0, "b": 0.0, "c": 1.0, "x": 1.0}
    base = {"c": 0.0, "b": 0.0, "a": 0.0, "y": 1.0}
    result = paired_test(cand, base)
    assert result is not None
    assert (result.test, result.n_shared, result.candidate_only, result.baseline_only) == (
        "mcnemar_exact",
        3,
        2,
        0,
    )
    graded = paired_test({"a": 0.5, "b": 0.2}, {"a": 0.1, "b": 0.2}, resamples=100)
    assert graded is not None
    assert graded.test == "paired_bootstrap"
    assert paired_test({"a": 1.0}, {"b": 1.0}) is None
    assert result.as_dict()["ci_method"] == "bonett_price_adjusted_wald"
    assert result.significant(1.0)
    assert not result.significant(result.p_value)
