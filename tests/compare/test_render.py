"""The three formats: a rich table, markdown for pull requests, and JSON with documented keys."""

from __future__ import annotations

import json

from eval_framework.compare import compare
from eval_framework.compare.render import as_json, markdown, number, p_text

V = ("tiny-letters-v0", "tiny-letters-v1", "tiny-letters-v2")


def test_json_keys_are_stable(copy_bundles):
    comparison = compare([copy_bundles("v0", "v1", "v2")])
    data = json.loads(as_json(comparison))
    assert set(data) == {
        "schema_version", "baseline", "confidence", "bootstrap", "versions", "tasks", "results",
        "comparisons", "warnings", "skipped",
    }  # fmt: skip
    assert data["schema_version"] == 1
    assert data["baseline"] is None
    assert data["confidence"] == 0.95
    assert [v["label"] for v in data["versions"]] == list(V)
    assert set(data["versions"][0]) == {"label", "checkpoint", "version", "qualified_name"}
    (first, *_) = data["results"]
    assert set(first) == {"version", "task", "bundle", "num_fewshot", "num_samples", "metrics"}
    assert set(first["metrics"]["acc"]) == {"mean", "stderr", "n", "per_sample"}
    assert len(data["comparisons"]) == 4  # two versions with a predecessor, two metrics
    test = data["comparisons"][0]
    assert set(test) == {
        "version", "baseline", "task", "metric", "test", "difference", "ci_low", "ci_high", "ci_method",
        "p_value", "n_shared", "n_only_candidate", "n_only_baseline", "candidate_mean", "baseline_mean",
        "candidate_only_correct", "baseline_only_correct", "note",
    }  # fmt: skip
    assert (test["version"], test["baseline"], test["metric"], test["test"]) == (
        V[1],
        V[0],
        "acc",
        "mcnemar_exact",
    )
    assert test["ci_method"] == "bonett_price_adjusted_wald"
    found = comparison.find(V[1], "tiny-letters", "acc")
    assert found is not None
    assert found.result is not None
    assert test["p_value"] == found.result.p_value
    assert test["n_shared"] == 200


def test_markdown_table(copy_bundles):
    comparison = compare([copy_bundles("v0", "v1", "v2")], baseline="v2")
    text = markdown(comparison)
    lines = text.splitlines()
    header = "| version | metric | mean | ± stderr | n | baseline | Δ | CI | p | test |"
    assert header in lines
    assert lines[lines.index(header) + 1].startswith("| --- | --- | ---: |")
    test = comparison.find(V[0], "tiny-letters", "acc")
    assert test is not None
    assert test.result is not None
    row = next(line for line in lines if line.startswith(f"| {V[0]} | acc |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    mean = comparison.cell(V[0], "tiny-letters").metrics["acc"].mean  # type: ignore[union-attr]
    assert cells[2] == f"{100 * mean:.1f}"  # type: ignore[operator]
    assert cells[5] == V[2]
    assert cells[6] == f"{100 * test.result.difference:+.1f} pp"
    assert cells[7] == f"[{100 * test.result.ci_low:+.1f}, {100 * test.result.ci_high:+.1f}]"
    assert cells[8] == p_text(test.result.p_value)
    assert "McNemar" in cells[9]
    assert "Bonett-Price" in text


def test_number_formats():
    assert number(0.6405, True) == "64.0"
    assert number(0.1, True, signed=True) == "+10.0"
    assert number(None, True) == "-"
    assert number("n/a", False) == "n/a"
    assert number(-0.123456, False, signed=True) == "-0.1235"
    assert p_text(0.0001) == "<0.001"
    assert p_text(0.04567) == "0.046"
    assert p_text(None) == "-"
