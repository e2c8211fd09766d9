"""An evaluation's plan: everything decided before the model is touched or a file is written.

Task, prompts and few-shot examples, the model's checked arguments, the registry checkpoint's
exact version, and from them the identity (the natural key) that names the bundle.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval_framework.config import EvalConfig
from eval_framework.errors import ModelError, TaskError
from eval_framework.model_plan import ModelPlan, check_model_args, plan_model
from eval_framework.models.base import BaseLLM
from eval_framework.models.loading import find_model_class
from eval_framework.redact import register_secrets_in
from eval_framework.results import bundle_dirname, natural_key
from eval_framework.tasks.base import Task
from eval_framework.tasks.fewshot import PreparedSample, Shots, prepare_samples, select_samples
from eval_framework.tasks.registry import get_task


@dataclass(frozen=True)
class EvalPlan:
    """Everything decided before touching the model or the output directory."""

    config: EvalConfig
    task: Task
    prepared: list[PreparedSample]
    model: ModelPlan
    key: str
    identity: dict[str, Any]

    @property
    def display(self) -> str:
        return self.model.display

    @property
    def bundle_name(self) -> str:
        settings = self.identity["settings"]
        return bundle_dirname(
            self.display, self.task.name, settings["num_fewshot"], settings["num_samples"], self.key
        )


def prompts_digest(task: Task, prepared: Sequence[PreparedSample]) -> str:
    """Every text the model will see and where its generations stop, hashed: a change in how
    prompts are rendered (a template, a few-shot rule, a separator) is a new evaluation even where
    nothing else in the key moved."""
    digest = hashlib.sha256()
    if task.kind == "generation":
        digest.update(json.dumps({"stop": list(task.stop)}).encode() + b"\n")
    for p in prepared:
        item = {
            "contexts": p.contexts(task),
            "continuations": p.continuations(task) if task.kind != "generation" else [],
        }
        digest.update(json.dumps(item, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def shots_for(task: Task, config: EvalConfig) -> int:
    """--num-fewshot, or the task's standard count when it is not given."""
    return task.default_fewshot if config.num_fewshot is None else config.num_fewshot


def _prepare_samples(task: Task, config: EvalConfig) -> tuple[int | None, list[PreparedSample]]:
    """The samples to evaluate with their few-shot examples, and the sample count that names the
    subset (None: all of them)."""
    available = task.eval_samples()
    num_samples = config.num_samples if config.num_samples and config.num_samples < len(available) else None
    samples = select_samples(available, num_samples, config.seed)
    if not samples:
        raise TaskError(f"task {task.name} has no samples to evaluate; check its data and --subjects")
    shots = Shots(shots_for(task, config), config.seed, k_is_default=config.num_fewshot is None)
    return num_samples, prepare_samples(task, available, samples, shots)


def _same_prompts(a: Sequence[PreparedSample], b: Sequence[PreparedSample]) -> bool:
    def seen(prepared: Sequence[PreparedSample]) -> list[tuple[Any, ...]]:
        return [(p.sample, p.fewshot_ids, p.prefix) for p in prepared]

    return seen(a) == seen(b)


def make_plan(config: EvalConfig, model: ModelPlan | None = None) -> EvalPlan:
    """Everything decided before touching the model: task, prompts, arguments, identity, and the
    registry checkpoint's exact version (``model``: a model plan already made for the same model
    settings, reused so the checkpoint is not looked up again)."""
    register_secrets_in(config.llm_args)
    model_cls = find_model_class(config.llm_name, config.models)
    model_args = check_model_args(config, model_cls)
    # Spellings that select the same samples are one evaluation: subjects in any order or repeated,
    # a subset as large as the task, a generation length equal to the task's own.
    subjects = tuple(sorted(set(config.subjects)))
    task = get_task(config.task_name, subjects, config.task_data_dir)
    method = "loglikelihood" if task.kind == "multiple_choice" else "generate"
    implementation = getattr(model_cls, method, None)
    if not callable(implementation) or implementation is getattr(BaseLLM, method):
        raise ModelError(
            f"{task.name} needs a model with {method}(), which {model_cls.__name__} does not implement; "
            f"use a model that has it"
        )
    num_samples, prepared = _prepare_samples(task, config)
    if subjects and set(subjects) == set(task.available_subjects):
        # Every subject listed: the whole task, when it gives the same prompts and few-shot examples
        # (a YAML task's few-shot pool may hold subjects its evaluation data lacks).
        whole = get_task(config.task_name, (), config.task_data_dir)
        whole_num, whole_prepared = _prepare_samples(whole, config)
        if _same_prompts(prepared, whole_prepared):
            task, num_samples, prepared = whole, whole_num, whole_prepared
    max_tokens = config.max_tokens if task.kind == "generation" else None
    settings = {
        "num_fewshot": shots_for(task, config),
        "num_samples": num_samples,
        "seed": config.seed,
        "max_tokens": None if max_tokens == task.max_tokens else max_tokens,
        "prompts_sha256": prompts_digest(task, prepared),
    }
    task_ident = task.identity()
    if model is None:
        model = plan_model(model_cls, model_args)  # last: a registry checkpoint is looked up here
    return EvalPlan(
        config=config,
        task=task,
        prepared=prepared,
        model=model,
        key=natural_key(model.identity, task_ident, settings),
        identity={"model": model.identity, "task": task_ident, "settings": settings},
    )
