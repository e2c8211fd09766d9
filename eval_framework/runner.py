"""The evaluation loop: plan, then resume or reuse, score in batches, stream rows, aggregate.

Order matters for "bad input loses nothing": everything that can be checked without the model
(task, prompts, model class and arguments, identity, an unsynced W&B run in the way of
--overwrite) is checked before anything is created, and the model is loaded before the bundle
directory is made, so a failure there leaves no half-made bundle behind.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

from eval_framework.bundle_schema import MetadataFile, ResultsFile
from eval_framework.config import EvalConfig
from eval_framework.errors import EvalFrameworkError, ModelError, OutputError, TaskError
from eval_framework.metrics import aggregate, score_multiple_choice
from eval_framework.models.base import BaseLLM, GenerationRequest, LoglikelihoodRequest
from eval_framework.models.loading import check_llm_args, find_model_class, instantiate, model_identity
from eval_framework.redact import ScrubFilter, register_secrets_in
from eval_framework.results import (
    SCHEMA_VERSION,
    BadLine,
    Bundle,
    SampleLine,
    bundle_dirname,
    ensure_writable,
    natural_key,
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


@dataclass(frozen=True)
class EvalPlan:
    """Everything decided before touching the model or the output directory."""

    config: EvalConfig
    task: Task
    prepared: list[PreparedSample]
    model_cls: type
    llm_args: dict[str, Any]  #: checked against the constructor, values converted to its types
    key: str
    display: str
    identity: dict[str, Any]

    @property
    def bundle_name(self) -> str:
        c = self.config
        return bundle_dirname(self.display, self.task.name, c.num_fewshot, c.num_samples, self.key)


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


class _BundleLogHandler(logging.FileHandler):
    """eval.log; a failed write (disk full) must not print logging's own traceback: the next bundle
    write reports the problem as one line."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


@contextmanager
def _bundle_log(path: Path) -> Iterator[None]:
    handler = _BundleLogHandler(path, encoding="utf-8", delay=True)
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
        raise ModelError(
            f"{task.name} needs a model with {method}(): {exc}; use a model that has it"
        ) from exc
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
        raise ModelError(
            f"the model returned {len(results)} loglikelihoods for {len(requests)} requests; fix its "
            "loglikelihood() to return one result per request, in order"
        )
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
        raise ModelError(
            f"the model returned {len(outputs)} generations for {len(requests)} requests; fix its "
            "generate() to return one string per request, in order"
        )
    rows = []
    for (index, prepared), text in zip(batch, outputs, strict=True):
        s = prepared.sample
        if not isinstance(text, str):
            raise ModelError(
                f"the model's generate() returned {type(text).__name__}, not str; fix it to return strings"
            )
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


def make_plan(config: EvalConfig) -> EvalPlan:
    """Everything decided before touching the model: task, prompts, arguments, identity."""
    register_secrets_in(config.llm_args)
    model_cls = find_model_class(config.llm_name, config.models)
    llm_args = check_llm_args(model_cls, config.llm_args)
    task = get_task(config.task_name, config.subjects, config.task_data_dir)
    samples = select_samples(task.eval_samples(), config.num_samples, config.seed)
    if not samples:
        raise TaskError(f"task {task.name} has no samples to evaluate; check its data and --subjects")
    prepared = [prepare(task, s, config.num_fewshot, config.seed) for s in samples]
    settings = {
        "num_fewshot": config.num_fewshot,
        "num_samples": config.num_samples,
        "seed": config.seed,
        "max_tokens": config.max_tokens if task.kind == "generation" else None,
    }
    model_ident = model_identity(model_cls, llm_args)
    task_ident = task.identity()
    display = (
        model_cls.display_name_for(llm_args) if hasattr(model_cls, "display_name_for") else model_cls.__name__
    )
    return EvalPlan(
        config=config,
        task=task,
        prepared=prepared,
        model_cls=model_cls,
        llm_args=llm_args,
        key=natural_key(model_ident, task_ident, settings),
        display=display,
        identity={"model": model_ident, "task": task_ident, "settings": settings},
    )


def evaluate(
    config: EvalConfig,
    progress: ProgressFn | None = None,
    model: BaseLLM | Any | None = None,
    hooks: RunHooks | None = None,
) -> EvalOutcome:
    """Run (or resume, or reuse) one evaluation and return its bundle."""
    plan = make_plan(config)
    ensure_writable(config.output_dir)
    bundle = Bundle(config.output_dir / plan.bundle_name)
    with bundle.lock():
        bundle.finish_interrupted_swap()
        if config.overwrite:
            return _overwrite(plan, bundle, progress, model)
        done = _resume_point(plan, bundle)
        if done is None:
            log.info("reusing finished evaluation in %s (pass --overwrite to recompute)", bundle.dir)
            return EvalOutcome(bundle.dir, bundle.results(), bundle.metadata(), reused=True)
        return _run(plan, bundle, done, progress, model, hooks)


def _overwrite(plan: EvalPlan, bundle: Bundle, progress: ProgressFn | None, model: Any) -> EvalOutcome:
    """Evaluate into a hidden sibling and swap it in only once complete: the old bundle stays
    authoritative until then, whatever stops the process; a rerun with --overwrite resumes it."""
    unsynced = bundle.unsynced_offline_runs()
    if unsynced:
        raise OutputError(
            f"--overwrite would delete {len(unsynced)} W&B run(s) logged offline in {bundle.dir} and never "
            f"synced; sync them first (wandb sync {' '.join(str(p) for p in unsynced)}) or delete them to "
            "discard, then rerun"
        )
    staging = Bundle(bundle.overwrite_dir)
    try:
        done = _resume_point(plan, staging)
    except OutputError:  # our own scratch space: start it again rather than stop on it
        log.info("discarding an unusable unfinished --overwrite in %s", staging.dir)
        shutil.rmtree(staging.dir)
        done = {}
    if done is None:  # finished before a kill stopped the swap
        results, metadata = staging.results(), staging.metadata()
    else:
        outcome = _run(plan, staging, done, progress, model, hooks=None)
        results, metadata = outcome.results, outcome.metadata
    bundle.promote(staging)
    return EvalOutcome(bundle.dir, results, metadata, reused=False)


def _resume_point(plan: EvalPlan, bundle: Bundle) -> dict[int, dict[str, Any]] | None:
    """None when ``bundle`` is a complete evaluation of ``plan``; else the sample rows that can be
    kept (damaged or foreign rows are set aside and recomputed)."""
    if not bundle.dir.exists():
        return {}
    metadata = bundle.metadata() if bundle.exists() else None
    if metadata is not None and metadata["natural_key"] != plan.key:
        raise OutputError(
            f"{bundle.dir} holds a different evaluation; move it away or rerun with --overwrite"
        )
    scan = bundle.scan_samples()
    keep: list[SampleLine] = []
    bad = list(scan.bad)
    done: dict[int, dict[str, Any]] = {}
    for line in scan.rows:
        reason = _mismatch(plan, line.row, done)
        if reason is None:
            keep.append(line)
            done[line.row["index"]] = line.row
        else:
            bad.append(BadLine(line.number, reason, _line_text(line.row)))
    if metadata is not None:
        why = bundle.problems(scan)
        if why is None and not bad:
            return None  # complete, and every row is this evaluation's
        if metadata["status"] == "complete" and not bad:  # bad rows are reported one by one below
            log.warning("%s is not a consistent finished evaluation (%s): completing it", bundle.dir, why)
    bundle.truncate_torn_tail()
    if bad:
        for item in sorted(bad, key=lambda b: b.number):
            log.warning(
                "%s:%d is not a usable sample row (%s): it is set aside in samples.rejected.jsonl and "
                "recomputed",
                bundle.samples_path,
                item.number,
                item.reason,
            )
        bundle.keep_only(keep, bad)
    return done


def _line_text(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)


def _mismatch(plan: EvalPlan, row: dict[str, Any], done: dict[int, dict[str, Any]]) -> str | None:
    """Why a valid row does not belong at its index of this evaluation, or None."""
    index = row["index"]
    if index >= len(plan.prepared):
        return f"index {index} is beyond the {len(plan.prepared)} samples"
    if index in done:
        return f"a second row for index {index}"
    prepared = plan.prepared[index]
    expected = {
        "id": prepared.sample.id,
        "prompt": prepared.sample.prompt,
        "fewshot_ids": list(prepared.fewshot_ids),
    }
    for name, value in expected.items():
        if row[name] != value:
            return f"its {name} is not the one of sample {index}"
    kind = plan.task.kind
    if (kind == "multiple_choice") != (row.get("choices") is not None):
        return f"not a {kind.replace('_', ' ')} row"
    missing = [m for m in plan.task.metrics if m not in row["scores"]]
    if missing:
        return f"no score for {', '.join(missing)}"
    return None


def _metadata(plan: EvalPlan, bundle: Bundle, resumed: bool) -> dict[str, Any]:
    config, task = plan.config, plan.task
    previous = bundle.metadata() if bundle.exists() else {}
    return {
        "schema_version": SCHEMA_VERSION,
        "natural_key": plan.key,
        "status": "running",
        "framework": {"name": "eval_framework", "version": __version__},
        "config": config.redacted(),
        "model": {
            "name": plan.display,
            "identity": plan.identity["model"],
            "details": previous.get("model", {}).get("details"),
        },
        "task": {
            "name": task.name,
            "kind": task.kind,
            "language": task.language,
            "subjects": sorted({p.sample.subject for p in plan.prepared if p.sample.subject}),
            "num_fewshot": config.num_fewshot,
            "num_samples": len(plan.prepared),
            "num_samples_requested": config.num_samples,
            "seed": config.seed,
            "metrics": list(task.metrics),
            "dataset": task.dataset_info(),
            "identity": plan.identity["task"],
        },
        "timings": {
            "started_at": previous.get("timings", {}).get("started_at", _now()),
            "resumed_at": _now() if resumed else None,
        },
        "environment": _environment(),
        "links": previous.get("links", {}),
    }


def _write_checked(path: Path, data: dict[str, Any], model: type[MetadataFile] | type[ResultsFile]) -> None:
    model.model_validate(data)  # what we write must read back: a failure here is our bug, said early
    write_json(path, data)


def _run(
    plan: EvalPlan,
    bundle: Bundle,
    done: dict[int, dict[str, Any]],
    progress: ProgressFn | None,
    model: Any | None,
    hooks: RunHooks | None,
) -> EvalOutcome:
    config = plan.config
    started = time.time()
    pending = [(i, p) for i, p in enumerate(plan.prepared) if i not in done]
    load_s = None
    if pending and model is None:
        # Before the bundle directory exists: a model that fails to load leaves nothing behind.
        load_start = time.time()
        model = instantiate(plan.model_cls, plan.llm_args, config.batch_size)
        load_s = round(time.time() - load_start, 3)
    try:
        bundle.dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {bundle.dir}: {exc.strerror}; check --output-dir") from exc
    metadata = _metadata(plan, bundle, resumed=bool(done))
    if load_s is not None:
        metadata["timings"]["model_load_s"] = load_s
    if pending:
        describe = getattr(model, "describe", None)
        metadata["model"]["details"] = describe() if callable(describe) else {}
    _write_checked(bundle.metadata_path, metadata, MetadataFile)
    try:
        if hooks is not None:
            hooks.started(bundle)
        with _bundle_log(bundle.log_path):
            return _score_all(plan, bundle, pending, done, metadata, model, progress, started)
    except BaseException as exc:
        if hooks is not None:
            hooks.interrupted(exc)
        raise


def _score_all(
    plan: EvalPlan,
    bundle: Bundle,
    pending: list[tuple[int, PreparedSample]],
    done: dict[int, dict[str, Any]],
    metadata: dict[str, Any],
    model: Any,
    progress: ProgressFn | None,
    started: float,
) -> EvalOutcome:
    config, task = plan.config, plan.task
    log.info("evaluating %s on %s: %d samples (%d already done) -> %s", plan.display, task.name,
             len(plan.prepared), len(done), bundle.dir)  # fmt: skip
    total, finished = len(plan.prepared), len(done)
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
        "model": plan.display,
        "natural_key": plan.key,
        "metrics": aggregate([done[i] for i in sorted(done)], task.metrics),
    }
    _write_checked(bundle.results_path, results, ResultsFile)
    metadata["status"] = "complete"
    metadata["timings"]["finished_at"] = _now()
    metadata["timings"]["duration_s"] = round(time.time() - started, 3)
    _write_checked(bundle.metadata_path, metadata, MetadataFile)
    log.info("finished %s on %s", plan.display, task.name)
    return EvalOutcome(bundle.dir, results, metadata, reused=False)
