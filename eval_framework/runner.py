"""The evaluation loop: select samples, score them in batches, stream rows, aggregate."""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

from eval_framework.config import EvalConfig
from eval_framework.errors import EvalFrameworkError, ModelError, OutputError, TaskError
from eval_framework.metrics import aggregate, score_multiple_choice
from eval_framework.models.base import GenerationRequest, LoglikelihoodRequest
from eval_framework.models.loading import find_model_class, instantiate
from eval_framework.redact import ScrubFilter
from eval_framework.results import (
    SCHEMA_VERSION,
    Bundle,
    bundle_dirname,
    ensure_writable,
    natural_key,
    replacing,
    write_json,
)
from eval_framework.tasks.base import Task
from eval_framework.tasks.fewshot import PreparedSample, prepare, select_samples
from eval_framework.tasks.registry import get_task
from eval_framework.version import __version__

log = logging.getLogger(__name__)

#: Called with (done, total) as samples finish.
ProgressFn = Callable[[int, int], None]


class RunHooks(Protocol):
    """Told when an evaluation starts writing its bundle and when it stops early (live logging)."""

    def started(self, bundle: Bundle) -> None: ...

    def interrupted(self, exc: BaseException) -> None: ...


@dataclass(frozen=True)
class EvalOutcome:
    bundle_dir: Path
    results: dict[str, Any]
    metadata: dict[str, Any]
    reused: bool  #: True when a finished bundle was found and nothing was recomputed


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("torch", "transformers", "datasets"):
        try:
            env[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            env[package] = None
    return env


@contextmanager
def _bundle_log(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ScrubFilter())
    root = logging.getLogger("eval_framework")
    root.addHandler(handler)
    previous = root.level
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


@contextmanager
def _model_call(task: Task, method: str) -> Iterator[None]:
    """Model failures become one clear error; rows already streamed stay for the resume."""
    try:
        yield
    except NotImplementedError as exc:
        raise ModelError(f"{task.name} needs a model with {method}(): {exc}") from exc
    except EvalFrameworkError:
        raise
    except Exception as exc:
        raise ModelError(
            f"the model failed during {method}(): {type(exc).__name__}: {exc}; finished samples are "
            "saved, rerun the same command to resume"
        ) from exc


def _base_row(index: int, prepared: PreparedSample) -> dict[str, Any]:
    s = prepared.sample
    return {
        "index": index,
        "id": s.id,
        "subject": s.subject,
        "prompt": s.prompt,
        "fewshot_ids": list(prepared.fewshot_ids),
        "target": s.target,
    }


def _score_mc(task: Task, model: Any, batch: Sequence[tuple[int, PreparedSample]]) -> list[dict[str, Any]]:
    requests: list[LoglikelihoodRequest] = []
    for _, prepared in batch:
        for ctx, cont in zip(prepared.contexts(task), prepared.continuations(task), strict=True):
            requests.append(LoglikelihoodRequest(ctx, cont))
    with _model_call(task, "loglikelihood"):
        results = model.loglikelihood(requests)
    if len(results) != len(requests):
        raise ModelError(f"the model returned {len(results)} loglikelihoods for {len(requests)} requests")
    rows, offset = [], 0
    for index, prepared in batch:
        s = prepared.sample
        mine = results[offset : offset + len(s.choices)]
        offset += len(s.choices)
        logprobs = [float(r.logprob) for r in mine]
        scored = score_multiple_choice(logprobs, s.choices, int(s.target))
        rows.append(
            {
                **_base_row(index, prepared),
                "choices": list(s.choices),
                "logprobs": logprobs,
                "is_greedy": [bool(r.is_greedy) for r in mine],
                "prediction": scored["prediction"],
                "prediction_norm": scored["prediction_norm"],
                "scores": {m: scored[m] for m in task.metrics},
            }
        )
    return rows


def _score_generation(
    task: Task, model: Any, batch: Sequence[tuple[int, PreparedSample]], max_tokens: int
) -> list[dict[str, Any]]:
    requests = [GenerationRequest(p.contexts(task)[0], max_tokens, task.stop) for _, p in batch]
    with _model_call(task, "generate"):
        outputs = model.generate(requests)
    if len(outputs) != len(requests):
        raise ModelError(f"the model returned {len(outputs)} generations for {len(requests)} requests")
    rows = []
    for (index, prepared), text in zip(batch, outputs, strict=True):
        s = prepared.sample
        extracted = task.extract_answer(text)
        rows.append(
            {
                **_base_row(index, prepared),
                "generation": text,
                "extracted": extracted,
                "scores": {"exact_match": float(task.matches(extracted, str(s.target)))},
            }
        )
    return rows


def plan(config: EvalConfig) -> tuple[Task, list[PreparedSample], type, str, str, dict[str, Any]]:
    """Everything decided before touching the model: task, prompts, identity, bundle name."""
    task = get_task(config.task_name, config.subjects, config.task_data_dir)
    samples = select_samples(task.eval_samples(), config.num_samples, config.seed)
    if not samples:
        raise TaskError(f"task {task.name} has no samples to evaluate")
    prepared = [prepare(task, s, config.num_fewshot, config.seed) for s in samples]
    model_cls = find_model_class(config.llm_name, config.models)
    settings = {
        "num_fewshot": config.num_fewshot,
        "num_samples": config.num_samples,
        "seed": config.seed,
        "max_tokens": config.max_tokens if task.kind == "generation" else None,
    }
    model_identity = (
        model_cls.result_identity(config.llm_args)
        if hasattr(model_cls, "result_identity")
        else {"class": model_cls.__qualname__}
    )
    key = natural_key(model_identity, task.identity(), settings)
    display = (
        model_cls.display_name_for(config.llm_args)
        if hasattr(model_cls, "display_name_for")
        else model_cls.__name__
    )
    identity = {"model": model_identity, "task": task.identity(), "settings": settings}
    return task, prepared, model_cls, key, display, identity


def evaluate(
    config: EvalConfig,
    progress: ProgressFn | None = None,
    model: Any | None = None,
    hooks: RunHooks | None = None,
) -> EvalOutcome:
    """Run (or resume, or reuse) one evaluation and return its bundle."""
    task, prepared, model_cls, key, display, identity = plan(config)
    ensure_writable(config.output_dir)
    bundle = Bundle(
        config.output_dir / bundle_dirname(display, task.name, config.num_fewshot, config.num_samples, key)
    )
    with bundle.lock():
        if bundle.is_complete() and not config.overwrite:
            log.info("reusing finished evaluation in %s (pass --overwrite to recompute)", bundle.dir)
            return EvalOutcome(bundle.dir, bundle.results(), bundle.metadata(), reused=True)
        if config.overwrite:
            with replacing(bundle):
                return _run(
                    config, task, prepared, model_cls, key, display, identity, bundle, progress, model, hooks
                )
        return _run(config, task, prepared, model_cls, key, display, identity, bundle, progress, model, hooks)


def _run(
    config: EvalConfig,
    task: Task,
    prepared: list[PreparedSample],
    model_cls: type,
    key: str,
    display: str,
    identity: dict[str, Any],
    bundle: Bundle,
    progress: ProgressFn | None,
    model: Any | None,
    hooks: RunHooks | None = None,
) -> EvalOutcome:
    bundle.dir.mkdir(parents=True, exist_ok=True)
    if bundle.exists() and bundle.metadata().get("natural_key") != key:
        raise OutputError(f"{bundle.dir} holds a different evaluation; move it away or use --overwrite")
    done = {row["index"]: row for row in bundle.read_samples()}
    previous = bundle.metadata() if bundle.exists() else {}
    started = time.time()
    metadata: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "natural_key": key,
        "status": "running",
        "framework": {"name": "eval_framework", "version": __version__},
        "config": config.redacted(),
        "model": {"name": display, "identity": identity["model"]},
        "task": {
            "name": task.name,
            "kind": task.kind,
            "language": task.language,
            "subjects": sorted({p.sample.subject for p in prepared if p.sample.subject}),
            "num_fewshot": config.num_fewshot,
            "num_samples": len(prepared),
            "num_samples_requested": config.num_samples,
            "seed": config.seed,
            "metrics": list(task.metrics),
            "dataset": task.dataset_info(),
            "identity": identity["task"],
        },
        "timings": {
            "started_at": previous.get("timings", {}).get("started_at", _now()),
            "resumed_at": _now() if done else None,
        },
        "environment": _environment(),
        "links": previous.get("links", {}),
    }
    write_json(bundle.metadata_path, metadata)
    if hooks is not None:
        hooks.started(bundle)
    try:
        return _score_all(config, task, prepared, model_cls, key, display, bundle, progress, model, metadata,
                          done, started)  # fmt: skip
    except BaseException as exc:
        if hooks is not None:
            hooks.interrupted(exc)
        raise


def _score_all(
    config: EvalConfig,
    task: Task,
    prepared: list[PreparedSample],
    model_cls: type,
    key: str,
    display: str,
    bundle: Bundle,
    progress: ProgressFn | None,
    model: Any | None,
    metadata: dict[str, Any],
    done: dict[int, dict[str, Any]],
    started: float,
) -> EvalOutcome:
    with _bundle_log(bundle.log_path):
        pending = [(i, p) for i, p in enumerate(prepared) if i not in done]
        log.info(
            "evaluating %s on %s: %d samples (%d already done) -> %s",
            display,
            task.name,
            len(prepared),
            len(done),
            bundle.dir,
        )
        if pending:
            load_start = time.time()
            model = model if model is not None else instantiate(model_cls, config.llm_args, config.batch_size)
            metadata["timings"]["model_load_s"] = round(time.time() - load_start, 3)
            describe = getattr(model, "describe", None)
            metadata["model"]["details"] = describe() if callable(describe) else {}
            write_json(bundle.metadata_path, metadata)
        total, finished = len(prepared), len(done)
        if progress:
            progress(finished, total)
        chunk = max(config.batch_size * 4, 32)
        max_tokens = config.max_tokens or task.max_tokens
        for start in range(0, len(pending), chunk):
            batch = pending[start : start + chunk]
            rows = (
                _score_mc(task, model, batch)
                if task.kind == "multiple_choice"
                else _score_generation(task, model, batch, max_tokens)
            )
            bundle.append_samples(rows)
            done.update((row["index"], row) for row in rows)
            finished += len(rows)
            if progress:
                progress(finished, total)
        results = {
            "schema_version": SCHEMA_VERSION,
            "task": task.name,
            "model": display,
            "natural_key": key,
            "metrics": aggregate([done[i] for i in sorted(done)], task.metrics),
        }
        write_json(bundle.results_path, results)
        metadata["status"] = "complete"
        metadata["timings"]["finished_at"] = _now()
        metadata["timings"]["duration_s"] = round(time.time() - started, 3)
        write_json(bundle.metadata_path, metadata)
        log.info("finished %s on %s", display, task.name)
    return EvalOutcome(bundle.dir, results, metadata, reused=False)
