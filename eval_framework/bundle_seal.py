"""A finished bundle's seal, and the checks that need no task: what catches edits after the end.

The seal is a digest over the files as stored (metadata less its links, results, rows in index
order), numbers compared as values; it is a checksum, not a signature.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eval_framework.bundle_io import canonical_json
from eval_framework.metrics import score_multiple_choice

#: metadata.json keys outside the seal: the seal itself, and links (added after exports).
UNSEALED = ("seal", "links")


def seal_of(
    metadata: Mapping[str, Any], results: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]
) -> str:
    """A digest over a finished bundle's content as stored (metadata less its links, results, rows
    in index order, whatever their formatting or line order). It catches edits made after the
    evaluation finished, by hand or by other tools; it is a checksum, not a signature."""
    digest = hashlib.sha256()
    sealed = {k: v for k, v in metadata.items() if k not in UNSEALED}
    digest.update(canonical_json(_number_form(sealed)).encode())
    digest.update(b"\n" + canonical_json(_number_form(results)).encode())
    for row in sorted(rows, key=lambda r: r["index"]):
        digest.update(b"\n" + canonical_json(_number_form(row)).encode())
    return digest.hexdigest()


def _number_form(value: Any) -> Any:
    """Numbers as values, not spellings: JSON tools write 1.0 as 1 (jq, JavaScript); reformatting is
    not an edit."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _number_form(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_number_form(v) for v in value]
    return value


def as_stored(data: Any) -> Any:
    """``data`` as ``write_json`` stores it and a read gives it back (what a seal is computed on)."""
    return json.loads(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str))


def scored_problem(row: Mapping[str, Any], metrics: Sequence[str], schema_version: int) -> str | None:
    """Why a row's scores are not what its own outputs give, or None. Needs no task: a multiple
    choice row's prediction and scores follow from its log-likelihoods, choices and target; any
    row's scores hold exactly the bundle's metrics, each 0 or 1."""
    scores = row["scores"]
    if sorted(scores) != sorted(metrics):
        return f"its scores are for {sorted(scores)}, the evaluation's metrics are {sorted(metrics)}"
    if row.get("choices") is not None:
        # Up to schema 2, acc_norm was per UTF-8 byte; such bundles stay valid as they were written.
        scored = score_multiple_choice(
            row["logprobs"], row["choices"], row["target"], byte_norm=schema_version <= 2
        )
        for name in ("prediction", "prediction_norm"):
            if row[name] != scored[name]:
                return f"its {name} is not what its log-likelihoods give"
        if any(scores[m] != scored[m] for m in metrics if m in scored):
            return "its scores are not what its log-likelihoods give"
    elif any(value not in (0.0, 1.0) for value in scores.values()):
        return "its scores are not 0 or 1"
    return None
