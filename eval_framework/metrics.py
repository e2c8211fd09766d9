"""Per-sample scoring and aggregation with standard errors."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value; ties go to the first (deterministic)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def _per_unit(logprobs: Sequence[float], lengths: Sequence[int]) -> list[float]:
    # An empty choice has no length to divide by: it is never preferred (lm-eval divides by zero,
    # which gives -inf for a negative log-likelihood).
    return [lp / n if n else -math.inf for lp, n in zip(logprobs, lengths, strict=True)]


def score_multiple_choice(
    logprobs: Sequence[float], choices: Sequence[str], target: int, *, byte_norm: bool = False
) -> dict[str, Any]:
    """acc: highest total log-likelihood; acc_norm: highest log-likelihood per character of the
    choice text (lm-eval's acc_norm); acc_bytes: per UTF-8 byte (lm-eval's acc_bytes).

    ``byte_norm`` reads bundles of schema 2 and older, whose acc_norm was per byte."""
    pred = argmax(logprobs)
    chars = _per_unit(logprobs, [len(c) for c in choices])
    per_byte = _per_unit(logprobs, [len(c.encode("utf-8")) for c in choices])
    if byte_norm:  # the old rule exactly, an empty choice counted as one byte
        legacy = [max(1, len(c.encode("utf-8"))) for c in choices]
        pred_norm = argmax([lp / n for lp, n in zip(logprobs, legacy, strict=True)])
    else:
        pred_norm = argmax(chars)
    pred_bytes = argmax(per_byte)
    return {
        "prediction": pred,
        "prediction_norm": pred_norm,
        "acc": float(pred == target),
        "acc_norm": float(pred_norm == target),
        "acc_bytes": float(pred_bytes == target),
    }


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n))."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def aggregate(rows: Iterable[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """``{"overall": {metric: {value, stderr, n}}, "subjects": {subject: {...}}}``.

    Overall is the mean over all samples (micro average); per-subject blocks appear when samples
    carry a subject.
    """
    by_subject: dict[str, list[Mapping[str, Any]]] = {}
    all_rows: list[Mapping[str, Any]] = []
    for row in rows:
        all_rows.append(row)
        if row.get("subject") is not None:
            by_subject.setdefault(str(row["subject"]), []).append(row)

    def block(items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | int | None]]:
        out: dict[str, dict[str, float | int | None]] = {}
        for metric in metrics:
            values = [float(r["scores"][metric]) for r in items if metric in r.get("scores", {})]
            mean, se = mean_stderr(values)
            out[metric] = {
                "value": None if math.isnan(mean) else mean,
                "stderr": None if math.isnan(se) else se,
                "n": len(values),
            }
        return out

    result: dict[str, Any] = {"overall": block(all_rows)}
    if by_subject:
        result["subjects"] = {s: block(items) for s, items in sorted(by_subject.items())}
    return result
