"""Paired tests of a candidate against a baseline on the samples both evaluated.

Accuracy-type metrics (every shared score 0 or 1): McNemar's exact test, the two-sided binomial
test of the discordant pairs at p = 1/2 (what statsmodels' ``mcnemar(table, exact=True)`` gives),
with the Bonett-Price adjusted Wald interval for the paired difference of proportions (Bonett &
Price 2012: close to nominal coverage even with few discordant pairs, where the plain Wald
interval is too narrow). Other metrics: a seeded paired bootstrap of the mean difference
(percentile interval; p-value from the bootstrap distribution shifted to the null).

Pure stdlib: scipy and statsmodels are only used by the tests that check these numbers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

#: Below this many discordant pairs the binomial tail is summed exactly in integers.
EXACT_LIMIT = 20_000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 4_000
DEFAULT_SEED = 0

TestName = Literal["mcnemar_exact", "paired_bootstrap"]
CI_METHODS: dict[str, str] = {
    "mcnemar_exact": "bonett_price_adjusted_wald",
    "paired_bootstrap": "bootstrap_percentile",
}


@dataclass(frozen=True)
class PairedResult:
    """A candidate against a baseline on one metric, over the samples both evaluated.

    ``difference`` is candidate minus baseline, in the metric's units (a fraction for accuracy),
    over the shared samples; ``ci_low``/``ci_high`` bound it at ``confidence``.
    """

    test: TestName
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_shared: int
    confidence: float
    candidate_mean: float
    baseline_mean: float
    #: McNemar only: shared samples the candidate gets right and the baseline wrong, and the reverse
    candidate_only: int | None = None
    baseline_only: int | None = None

    @property
    def ci_method(self) -> str:
        return CI_METHODS[self.test]

    def significant(self, alpha: float) -> bool:
        return self.p_value < alpha

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ci_method": self.ci_method}


def binomial_two_sided_half(k: int, n: int) -> float:
    """Two-sided exact binomial p-value of ``k`` successes in ``n`` trials at p = 1/2:
    ``min(1, 2 * P(X <= min(k, n - k)))``, as McNemar's exact test (and, p being 1/2, scipy's
    ``binomtest``) computes it."""
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 1.0
    low = min(k, n - k)
    if n <= EXACT_LIMIT:
        tail, term = 0, 1
        for i in range(low + 1):  # C(n, i), built up exactly
            tail += term
            term = term * (n - i) // (i + 1)
        return min(1.0, (2 * tail) / (1 << n))
    return min(1.0, 2.0 * math.exp(_log_binomial_tail_half(low, n)))


def _log_binomial_tail_half(k: int, n: int) -> float:
    """log P(X <= k) for X ~ Binomial(n, 1/2), summed in log space (for n too large for exact
    integers to be cheap)."""
    log_n = math.lgamma(n + 1) - n * math.log(2.0)
    terms = [log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k + 1)]
    top = max(terms)
    return top + math.log(math.fsum(math.exp(t - top) for t in terms))


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def mcnemar_exact(
    candidate: Sequence[float], baseline: Sequence[float], confidence: float = DEFAULT_CONFIDENCE
) -> PairedResult:
    """McNemar's exact test on paired 0/1 scores (same order, same samples)."""
    n = _paired_length(candidate, baseline)
    cand_only = sum(1 for c, b in zip(candidate, baseline, strict=True) if c == 1 and b == 0)
    base_only = sum(1 for c, b in zip(candidate, baseline, strict=True) if c == 0 and b == 1)
    low, high = bonett_price_interval(cand_only, base_only, n, confidence)
    return PairedResult(
        test="mcnemar_exact",
        difference=(cand_only - base_only) / n,
        ci_low=low,
        ci_high=high,
        p_value=binomial_two_sided_half(cand_only, cand_only + base_only),
        n_shared=n,
        confidence=confidence,
        candidate_mean=sum(candidate) / n,
        baseline_mean=sum(baseline) / n,
        candidate_only=cand_only,
        baseline_only=base_only,
    )


def bonett_price_interval(
    candidate_only: int, baseline_only: int, n: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Bonett-Price adjusted Wald interval for p_candidate - p_baseline from ``n`` pairs, of which
    ``candidate_only`` are right only for the candidate and ``baseline_only`` only for the
    baseline: add one to each discordant count and two to n, then Wald; clipped to [-1, 1]."""
    p_c = (candidate_only + 1) / (n + 2)
    p_b = (baseline_only + 1) / (n + 2)
    centre = p_c - p_b
    half = _z(confidence) * math.sqrt(max(0.0, p_c + p_b - centre**2) / (n + 2))
    return max(-1.0, centre - half), min(1.0, centre + half)


def paired_bootstrap(
    candidate: Sequence[float],
    baseline: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PairedResult:
    """Seeded paired bootstrap of the mean difference: samples are resampled as pairs, so what
    both models find hard cancels out. Percentile interval; the p-value is the share of resampled
    means at least as far from the observed mean as the observed mean is from zero (the bootstrap
    distribution shifted to the null), counted as (1 + hits) / (1 + resamples)."""
    n = _paired_length(candidate, baseline)
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    _z(confidence)  # validates
    diffs = [c - b for c, b in zip(candidate, baseline, strict=True)]
    observed = math.fsum(diffs) / n
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    alpha = 1.0 - confidence
    hits = sum(1 for m in means if abs(m - observed) >= abs(observed) - 1e-12)
    return PairedResult(
        test="paired_bootstrap",
        difference=observed,
        ci_low=_quantile(means, alpha / 2),
        ci_high=_quantile(means, 1 - alpha / 2),
        p_value=min(1.0, (1 + hits) / (1 + resamples)),
        n_shared=n,
        confidence=confidence,
        candidate_mean=math.fsum(candidate) / n,
        baseline_mean=math.fsum(baseline) / n,
    )


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default 'linear' method)."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _paired_length(candidate: Sequence[float], baseline: Sequence[float]) -> int:
    if len(candidate) != len(baseline):
        raise ValueError(f"paired scores differ in length ({len(candidate)} and {len(baseline)})")
    if not candidate:
        raise ValueError("no shared samples to compare")
    return len(candidate)


def is_binary(*scores: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for values in scores for v in values)


def paired_test(
    candidate: Mapping[Any, float],
    baseline: Mapping[Any, float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PairedResult | None:
    """The right paired test for per-sample scores keyed by sample (McNemar when every shared
    score is 0 or 1, the bootstrap otherwise), over the keys both hold; None when they share none."""
    shared = [key for key in candidate if key in baseline]
    if not shared:
        return None
    cand = [float(candidate[k]) for k in shared]
    base = [float(baseline[k]) for k in shared]
    if is_binary(cand, base):
        return mcnemar_exact(cand, base, confidence)
    return paired_bootstrap(cand, base, confidence, resamples, seed)
