"""Versions x tasks, each version tested against its baseline on every metric."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval_framework.compare.collect import Evaluation, Version, collect
from eval_framework.compare.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    PairedResult,
    paired_test,
)
from eval_framework.errors import ConfigError

#: The version of the JSON document ``Comparison.as_dict`` returns (docs/sweeps.md lists its keys).
JSON_SCHEMA = 1


@dataclass(frozen=True)
class MetricComparison:
    """A version against its baseline on one task and metric. ``result`` is None when no paired
    test could be made, and ``note`` says why (no per-sample scores, no shared samples)."""

    version: str
    baseline: str
    task: str
    metric: str
    result: PairedResult | None
    note: str | None
    #: samples only the candidate, or only the baseline, evaluated (not in the paired test)
    only_candidate: int
    only_baseline: int
    #: difference of the overall means when no paired test was made (None when not numeric)
    mean_difference: float | None = None

    def as_dict(self) -> dict[str, Any]:
        result = self.result.as_dict() if self.result else {}
        return {
            "version": self.version,
            "baseline": self.baseline,
            "task": self.task,
            "metric": self.metric,
            "test": result.get("test"),
            "difference": result.get("difference", self.mean_difference),
            "ci_low": result.get("ci_low"),
            "ci_high": result.get("ci_high"),
            "ci_method": result.get("ci_method"),
            "p_value": result.get("p_value"),
            "n_shared": result.get("n_shared", 0),
            "n_only_candidate": self.only_candidate,
            "n_only_baseline": self.only_baseline,
            "candidate_mean": result.get("candidate_mean"),
            "baseline_mean": result.get("baseline_mean"),
            "candidate_only_correct": result.get("candidate_only"),
            "baseline_only_correct": result.get("baseline_only"),
            "note": self.note,
        }


@dataclass
class Comparison:
    """Everything ``compare`` reports; render it with ``eval_framework.compare.render``."""

    versions: list[Version]
    tasks: list[str]
    cells: dict[tuple[str, str], Evaluation]
    metrics: dict[str, list[str]]  #: task to its metrics, main metric first
    comparisons: list[MetricComparison]
    baseline: str | None  #: the fixed baseline, or None: each version against its predecessor
    confidence: float
    seed: int
    resamples: int
    warnings: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [v.label for v in self.versions]

    def cell(self, version: str, task: str) -> Evaluation | None:
        return self.cells.get((version, task))

    def find(self, version: str, task: str, metric: str) -> MetricComparison | None:
        return next(
            (c for c in self.comparisons if (c.version, c.task, c.metric) == (version, task, metric)), None
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``compare --format json`` (keys documented in docs/sweeps.md)."""
        return {
            "schema_version": JSON_SCHEMA,
            "baseline": self.baseline,
            "confidence": self.confidence,
            "bootstrap": {"seed": self.seed, "resamples": self.resamples},
            "versions": [
                {
                    "label": v.label,
                    "checkpoint": v.checkpoint,
                    "version": v.version,
                    "qualified_name": v.qualified_name,
                }
                for v in self.versions
            ],
            "tasks": self.tasks,
            "results": [
                {
                    "version": e.version.label,
                    "task": task,
                    "bundle": str(e.bundle),
                    "num_fewshot": e.num_fewshot,
                    "num_samples": e.num_samples,
                    "metrics": {
                        name: {"mean": m.mean, "stderr": m.stderr, "n": m.n, "per_sample": m.per_sample}
                        for name, m in e.metrics.items()
                    },
                }
                for version in self.labels
                for task in self.tasks
                if (e := self.cells.get((version, task))) is not None
            ],
            "comparisons": [c.as_dict() for c in self.comparisons],
            "warnings": list(self.warnings),
            "skipped": [{"bundle": str(p), "reason": why} for p, why in self.skipped],
        }


def compare_evaluations(
    candidate: Evaluation,
    baseline: Evaluation,
    metric: str,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
) -> MetricComparison:
    """``candidate`` against ``baseline`` on one metric of one task, paired by sample: the
    function a promotion rule calls (``.result``: difference, CI, p-value, n shared)."""
    cand, base = candidate.scores.get(metric), baseline.scores.get(metric)
    labels = (candidate.version.label, baseline.version.label, candidate.task, metric)
    if cand is None or base is None:
        means = [e.metrics[metric].mean if metric in e.metrics else None for e in (candidate, baseline)]
        diff = None
        if all(isinstance(m, float | int) for m in means):
            diff = float(means[0]) - float(means[1])  # type: ignore[arg-type]
        means_only = "no per-sample scores: means only, no paired test"
        return MetricComparison(*labels, result=None, note=means_only, only_candidate=0, only_baseline=0,
                                mean_difference=diff)  # fmt: skip
    only_c = sum(1 for k in cand if k not in base)
    only_b = sum(1 for k in base if k not in cand)
    result = paired_test(cand, base, confidence, resamples, seed)
    note: str | None = None
    if result is None:
        note = "no shared samples (matched by subject and id): no paired test"
    elif only_c or only_b:
        note = (
            f"sample sets differ: {only_c} only in {candidate.version.label}, {only_b} only in "
            f"{baseline.version.label}; tested on the {result.n_shared} shared"
        )
    return MetricComparison(*labels, result=result, note=note, only_candidate=only_c, only_baseline=only_b)


def build_comparison(
    evaluations: Sequence[Evaluation],
    baseline: str | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
) -> Comparison:
    """Every version against ``baseline`` (a version label), or each against its predecessor."""
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"--confidence {confidence} is not between 0 and 1; pass e.g. 0.95")
    if resamples < 1:
        raise ConfigError(f"--resamples {resamples} must be at least 1; pass e.g. {DEFAULT_RESAMPLES}")
    versions = sorted({e.version.label: e.version for e in evaluations}.values(), key=lambda v: v.sort_key)
    labels = [v.label for v in versions]
    baseline = _baseline_label(baseline, labels) if baseline is not None else None
    tasks = sorted({e.task for e in evaluations})
    cells = {(e.version.label, e.task): e for e in evaluations}
    metrics: dict[str, list[str]] = {}
    for e in evaluations:
        names = metrics.setdefault(e.task, [])
        names += [m for m in e.metrics if m not in names]
    out = Comparison(versions, tasks, cells, metrics, [], baseline, confidence, seed, resamples)
    for task in tasks:
        present = [label for label in labels if (label, task) in cells]
        for i, label in enumerate(present):
            base_label = baseline if baseline is not None else (present[i - 1] if i else None)
            if base_label is None or base_label == label:
                continue
            base = cells.get((base_label, task))
            if base is None:
                out.warnings.append(
                    f"{label} on {task}: the baseline {base_label} has no evaluation of {task}; not tested"
                )
                continue
            for metric in metrics[task]:
                if metric in cells[(label, task)].metrics:
                    result = compare_evaluations(
                        cells[(label, task)], base, metric, confidence, seed, resamples
                    )
                    out.comparisons.append(result)
    for c in out.comparisons:
        if c.note and c.note.startswith("sample sets differ") and c.metric == metrics[c.task][0]:
            out.warnings.append(f"{c.version} vs {c.baseline} on {c.task}: {c.note}")
    return out


def _baseline_label(baseline: str, labels: list[str]) -> str:
    """``--baseline`` as a version label: exact, or the one label ending in it after a separator
    (``v2`` for the local checkpoint ``tiny-letters-v2``, ``v7`` for ``llama-sft:v7``)."""
    if baseline in labels:
        return baseline
    ends = [label for label in labels if any(label.endswith(sep + baseline) for sep in ":-_/@")]
    if len(ends) == 1:
        return ends[0]
    shown = ", ".join(labels[:12]) + (f", ... ({len(labels)} in all)" if len(labels) > 12 else "")
    if ends:
        raise ConfigError(
            f"--baseline {baseline} matches several versions ({', '.join(ends)}); pass the full label"
        )
    raise ConfigError(f"--baseline {baseline} is not among the versions compared ({shown}); pass one of them")


def compare(
    inputs: Sequence[str | Path],
    baseline: str | None = None,
    output_dir: Path = Path("outputs"),
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
) -> Comparison:
    """Compare the finished evaluations ``inputs`` name (bundles, directories holding bundles, or
    a registry collection looked up under ``output_dir``)."""
    collected = collect(inputs, output_dir)
    comparison = build_comparison(collected.evaluations, baseline, confidence, seed, resamples)
    comparison.warnings[:0] = collected.warnings
    comparison.skipped = collected.skipped
    return comparison
