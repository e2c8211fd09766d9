"""Bundles for the compare tests: real evaluations of the shipped tiny-letters checkpoints, and
copies of them re-stamped as other checkpoints through the bundle's own writers (rows, results
from ``aggregate``, a fresh seal), so that every one is a complete, valid bundle."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval_framework.bundle_io import atomic_write_text, write_json
from eval_framework.bundle_seal import as_stored, seal_of
from eval_framework.config import EvalConfig
from eval_framework.metrics import aggregate
from eval_framework.results import Bundle
from eval_framework.runner import evaluate

Row = dict[str, Any]


def evaluate_embedded(version: str, output_dir: Path, num_samples: int | None, num_fewshot: int = 3) -> Path:
    """A real evaluation of a shipped checkpoint on tiny-letters; its bundle directory."""
    config = EvalConfig(llm_name="embedded", llm_args={"version": version}, task_name="tiny-letters",
                        num_fewshot=num_fewshot, num_samples=num_samples, output_dir=output_dir)  # fmt: skip
    return evaluate(config).bundle_dir


def rows_of(bundle: Path) -> list[Row]:
    return [json.loads(line) for line in (bundle / "samples.jsonl").read_text().splitlines() if line.strip()]


def restamp(
    source: Path,
    target: Path,
    *,
    qualified_name: str | None = None,
    model_name: str | None = None,
    checkpoint_path: str | None = None,
    extra_metric: Callable[[Row], float] | None = None,
) -> Path:
    """A copy of ``source`` as another checkpoint: a registry version (``qualified_name``, e.g.
    ``acme/wandb-registry-model/llama-sft:v3``) or a local model named ``model_name`` (evaluated
    from ``checkpoint_path``);
    ``extra_metric`` adds a per-sample metric ``margin`` computed from each row."""
    shutil.copytree(source, target)
    meta = json.loads((target / "metadata.json").read_text())
    rows = rows_of(target)
    if qualified_name is not None:
        meta["model"]["identity"]["artifact"] = {"qualified_name": qualified_name, "digest": "d" * 32}
        meta["model"]["name"] = qualified_name.rsplit("/", 1)[-1].replace(":", "-")
    if model_name is not None:
        meta["model"]["name"] = model_name
    if checkpoint_path is not None:  # as --llm-name hf --llm-args checkpoint=<dir> records it
        meta["config"]["llm_args"] = {"checkpoint": checkpoint_path}
    metrics = meta["task"]["metrics"]
    if extra_metric is not None:
        metrics.append("margin")
        for row in rows:
            row["scores"]["margin"] = extra_metric(row)
    atomic_write_text(target / "samples.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    results = json.loads((target / "results.json").read_text())
    results["model"] = meta["model"]["name"]
    results["metrics"] = {"subjects": {}, **aggregate(sorted(rows, key=lambda r: r["index"]), metrics)}
    write_json(target / "results.json", results)
    stored_results = json.loads((target / "results.json").read_text())
    meta["seal"] = seal_of(as_stored({k: v for k, v in meta.items() if k != "seal"}), stored_results, rows)
    write_json(target / "metadata.json", meta)
    bundle = Bundle(target)
    assert bundle.is_complete(), bundle.skip_reason()
    return target


def margin(row: Row) -> float:
    """A metric that is not 0/1: how far the gold choice's log-likelihood is above the best other."""
    gold = row["logprobs"][row["target"]]
    others = [lp for i, lp in enumerate(row["logprobs"]) if i != row["target"]]
    return float(gold - max(others))
