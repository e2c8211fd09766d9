"""Versions x tasks and each version against its baseline, checked against the samples files read
independently and against statsmodels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from statsmodels.stats.contingency_tables import mcnemar

from eval_framework.compare import compare, compare_evaluations
from eval_framework.compare.collect import Evaluation, MetricValue, Version
from eval_framework.errors import ConfigError
from tests.compare.bundles import margin, restamp, rows_of

V = ("tiny-letters-v0", "tiny-letters-v1", "tiny-letters-v2")


def _scores(bundle: Path, metric: str = "acc") -> dict[str, float]:
    return {row["id"]: row["scores"][metric] for row in rows_of(bundle)}


def _statsmodels_p(cand: dict[str, float], base: dict[str, float]) -> tuple[float, int, int, int]:
    shared = [k for k in cand if k in base]
    c = sum(1 for k in shared if cand[k] == 1 and base[k] == 0)
    b = sum(1 for k in shared if cand[k] == 0 and base[k] == 1)
    both = sum(1 for k in shared if cand[k] == 1 and base[k] == 1)
    table = [[both, b], [c, len(shared) - both - b - c]]
    return mcnemar(table, exact=True).pvalue, len(shared), c, b


def test_each_version_against_its_predecessor(copy_bundles, evaluated):
    out = copy_bundles("v0", "v1", "v2")
    comparison = compare([out])
    assert comparison.labels == list(V)
    assert comparison.tasks == ["tiny-letters"]
    assert comparison.metrics["tiny-letters"] == ["acc", "acc_norm"]
    assert comparison.find(V[0], "tiny-letters", "acc") is None  # the first has no predecessor
    for cand, base in ((V[1], V[0]), (V[2], V[1])):
        test = comparison.find(cand, "tiny-letters", "acc")
        assert test is not None
        assert test.result is not None
        assert test.baseline == base
        expected_p, shared, c, b = _statsmodels_p(
            _scores(evaluated[cand.rsplit("-", 1)[1]]), _scores(evaluated[base.rsplit("-", 1)[1]])
        )
        assert test.result.p_value == pytest.approx(expected_p, rel=1e-12)
        assert (test.result.n_shared, test.result.candidate_only, test.result.baseline_only) == (shared, c, b)
        assert test.result.difference == pytest.approx((c - b) / shared)
        assert test.note is None
        assert test.only_candidate == test.only_baseline == 0
    # the shipped checkpoints differ clearly: v1 copies, v2 also reverses
    assert comparison.find(V[1], "tiny-letters", "acc").result.p_value < 0.01  # type: ignore[union-attr]
    assert comparison.find(V[2], "tiny-letters", "acc").result.ci_low > 0  # type: ignore[union-attr]
    means = comparison.cell(V[2], "tiny-letters").metrics["acc"]  # type: ignore[union-attr]
    stored = json.loads((evaluated["v2"] / "results.json").read_text())["metrics"]["overall"]["acc"]
    assert (means.mean, means.stderr, means.n) == (stored["value"], stored["stderr"], stored["n"])


def test_a_fixed_baseline(copy_bundles):
    out = copy_bundles("v0", "v1", "v2")
    comparison = compare([out], baseline="v2")  # the local checkpoint's label ends in it
    assert comparison.baseline == V[2]
    assert [(c.version, c.baseline) for c in comparison.comparisons if c.metric == "acc"] == [
        (V[0], V[2]),
        (V[1], V[2]),
    ]
    assert comparison.find(V[0], "tiny-letters", "acc").result.difference < 0  # type: ignore[union-attr]
    assert compare([out], baseline=V[0]).baseline == V[0]


def test_a_baseline_that_is_not_among_the_versions(copy_bundles):
    out = copy_bundles("v0", "v1")
    with pytest.raises(
        ConfigError,
        match=r"--baseline v40 is not among the versions compared \(tiny-letters-v0, tiny-letters-v1\)",
    ):
        compare([out], baseline="v40")


def test_registry_versions_and_unshared_samples(evaluated, tmp_path):
    out = tmp_path / "outputs"
    restamp(evaluated["v0-40"], out / "a", qualified_name="acme/wandb-registry-model/llama-sft:v3")
    restamp(evaluated["v1"], out / "b", qualified_name="acme/wandb-registry-model/llama-sft:v4")
    comparison = compare(["llama-sft"], output_dir=out)
    assert comparison.labels == ["v3", "v4"]
    test = comparison.find("v4", "tiny-letters", "acc")
    assert test is not None
    assert test.result is not None
    ids40, ids60 = set(_scores(evaluated["v0-40"])), set(_scores(evaluated["v1"]))
    assert test.result.n_shared == len(ids40 & ids60)
    assert (test.only_candidate, test.only_baseline) == (len(ids60 - ids40), len(ids40 - ids60))
    assert test.only_candidate > 0
    expected_p, *_ = _statsmodels_p(_scores(evaluated["v1"]), _scores(evaluated["v0-40"]))
    assert test.result.p_value == pytest.approx(expected_p, rel=1e-12)
    (warning,) = [w for w in comparison.warnings if "sample sets differ" in w]
    assert f"{test.only_candidate} only in v4, {test.only_baseline} only in v3" in warning


def test_a_metric_that_is_not_zero_or_one_is_bootstrapped(evaluated, tmp_path):
    out = tmp_path / "outputs"
    for name in ("v1", "v2"):
        restamp(
            evaluated[name],
            out / name,
            qualified_name=f"acme/wandb-registry-model/m:{name}",
            extra_metric=margin,
        )
    comparison = compare([out], seed=5, resamples=500)
    test = comparison.find("v2", "tiny-letters", "margin")
    assert test is not None
    assert test.result is not None
    assert test.result.test == "paired_bootstrap"
    cand, base = _scores(out / "v2", "margin"), _scores(out / "v1", "margin")
    assert test.result.difference == pytest.approx(sum(cand[k] - base[k] for k in cand) / len(cand))
    assert test.result.ci_low < test.result.difference < test.result.ci_high
    assert comparison.cell("v2", "tiny-letters").metrics["margin"].binary is False  # type: ignore[union-attr]
    again = compare([out], seed=5, resamples=500).find("v2", "tiny-letters", "margin")
    assert again == test  # seeded
    assert comparison.find("v2", "tiny-letters", "acc").result.test == "mcnemar_exact"  # type: ignore[union-attr]


def _evaluation(label: str, scores: dict[str, dict], means: dict[str, float]) -> Evaluation:
    return Evaluation(
        bundle=Path(label), version=Version(label, (0, "m", int(label[1:]), label), "m", label), task="t",
        task_name="t", num_fewshot=0, num_samples=2, finished_at=None,
        metrics={m: MetricValue(v, None, 2, m in scores) for m, v in means.items()}, scores=scores,
    )  # fmt: skip


def test_a_metric_without_per_sample_scores_gets_means_only():
    base = _evaluation("v1", {}, {"f1": 0.5})
    cand = _evaluation("v2", {}, {"f1": 0.75})
    test = compare_evaluations(cand, base, "f1")
    assert test.result is None
    assert test.mean_difference == pytest.approx(0.25)
    assert test.note == "no per-sample scores: means only, no paired test"
    assert test.as_dict()["p_value"] is None
    assert test.as_dict()["difference"] == pytest.approx(0.25)


def test_no_shared_samples():
    base = _evaluation("v1", {"acc": {(None, "a", 0): 1.0}}, {"acc": 1.0})
    cand = _evaluation("v2", {"acc": {(None, "b", 0): 0.0}}, {"acc": 0.0})
    test = compare_evaluations(cand, base, "acc")
    assert test.result is None
    assert test.note is not None
    assert "no shared samples" in test.note
    assert (test.only_candidate, test.only_baseline) == (1, 1)
