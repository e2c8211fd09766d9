"""``sweep --print-grid``: the selected versions as a Determined grid, one trial per version.

The output is a ``hyperparameters:`` block for an experiment with ``searcher: {name: grid}``: the
checkpoint is a categorical hyperparameter over the versions, and ``task_args`` lists the tasks,
so each trial evaluates its version on every task with one model load (docs/determined.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from eval_framework.config import EvalConfig
from eval_framework.redact import is_secret_key
from eval_framework.sweep.versions import Version


def grid_hparams(versions: Sequence[Version], configs: Sequence[EvalConfig]) -> dict[str, Any]:
    """The hyperparameters of the grid (registry versions as ``checkpoint``, directories as
    ``llm_args.checkpoint``)."""
    grid = {"type": "categorical", "vals": [v.reference for v in versions]}
    llm_name = configs[0].llm_name if configs else "hf"
    # the model's own arguments, secrets left out (give those to the trial's environment)
    own = {k: v for k, v in (configs[0].llm_args if configs else {}).items()
           if k not in ("artifact_name", "checkpoint") and not is_secret_key(k)}  # fmt: skip
    hparams: dict[str, Any] = {}
    if versions and versions[0].local:
        hparams["llm_name"] = llm_name
        hparams["llm_args"] = {**own, "checkpoint": grid}
    else:
        if llm_name != "hf":  # a registry checkpoint's default
            hparams["llm_name"] = llm_name
        if own:
            hparams["llm_args"] = own
        hparams["checkpoint"] = grid
    hparams["task_args"] = [_task_args(c) for c in configs]
    if configs:
        hparams["output_dir"] = str(configs[0].output_dir)
    return hparams


def _task_args(config: EvalConfig) -> dict[str, Any]:
    entry: dict[str, Any] = {"task_name": config.task_name}
    for key in ("num_fewshot", "num_samples", "max_tokens"):
        if getattr(config, key) is not None:
            entry[key] = getattr(config, key)
    if config.subjects:
        entry["task_subjects"] = list(config.subjects)
    if config.batch_size != EvalConfig.model_fields["batch_size"].default:
        entry["batch_size"] = config.batch_size
    return entry


def grid_yaml(versions: Sequence[Version], configs: Sequence[EvalConfig]) -> str:
    header = (
        f"# {len(versions)} trial(s), one per version: put this under an experiment's hyperparameters\n"
        "# with `searcher: {name: grid, ...}` and `entrypoint: eval_framework --context determined`\n"
    )
    body = yaml.safe_dump({"hyperparameters": grid_hparams(versions, configs)}, sort_keys=False)
    return header + body
