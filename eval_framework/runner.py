"""The evaluation loop: plan, then resume or reuse, score in batches, stream rows, aggregate.

Order matters for "bad input loses nothing": everything that can be checked without the model
(task, prompts, model class and arguments, identity, an unsynced W&B run in the way of
--overwrite) is checked before anything is created, and the model is loaded before the bundle
directory is made, so a failure there leaves no half-made bundle behind.
"""

from __future__ import annotations

import contextlib
import hashlib
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

from eval_framework import cleanup
from eval_framework.bundle_schema import MetadataFile, ResultsFile
from eval_framework.config import EvalConfig
from eval_framework.errors import ModelError, OutputError, TaskError, brief
from eval_framework.metrics import aggregate
from eval_framework.model_plan import ModelPlan, build_model, check_model_args, plan_model
from eval_framework.models.base import BaseLLM
from eval_framework.models.loading import find_model_class
from eval_framework.redact import ScrubFilter, redact, register_secrets_in, scrub
from eval_framework.results import (
    SCHEMA_VERSION,
    BadLine,
    Bundle,
    SampleLine,
    as_stored,
    bundle_dirname,
    ensure_writable,
    natural_key,
    seal_of,
    write_json,
)
from eval_framework.scoring import row_problem, score_generation, score_mc
from eval_framework.tasks.base import Task
from eval_framework.tasks.fewshot import PreparedSample, prepare_samples, select_samples
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

    def close(self) -> None:
        with contextlib.suppress(OSError):  # what a full disk left unflushed is lost, quietly
            super().close()


class _ScrubbingFormatter(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return scrub(super().formatException(ei))


@contextmanager
def _bundle_log(path: Path) -> Iterator[None]:
    handler = _BundleLogHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(_ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ScrubFilter())
    root = logging.getLogger("eval_framework")
    root.addHandler(handler)
    previous = root.level
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    except Exception as exc:
        # The whole failure, traceback and cause included, in the run's own log only: the console
        # gets the one line (the traceback with -v).
        why = (brief(exc, with_type=True),)
        record = root.makeRecord(
            root.name,
            logging.ERROR,
            __file__,
            0,
            "the evaluation stopped: %s",
            why,
            (type(exc), exc, exc.__traceback__),
        )
        handler.handle(record)
        raise
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


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
    k = shots_for(task, config)
    return num_samples, prepare_samples(
        task, available, samples, k, config.seed, k_is_default=config.num_fewshot is None
    )


def _same_prompts(a: Sequence[PreparedSample], b: Sequence[PreparedSample]) -> bool:
    def seen(prepared: Sequence[PreparedSample]) -> list[tuple[Any, ...]]:
        return [(p.sample, p.fewshot_ids, p.prefix) for p in prepared]

    return seen(a) == seen(b)


def make_plan(config: EvalConfig) -> EvalPlan:
    """Everything decided before touching the model: task, prompts, arguments, identity, and the
    registry checkpoint's exact version."""
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
    model = plan_model(model_cls, model_args)  # last: a registry checkpoint is looked up here
    return EvalPlan(
        config=config,
        task=task,
        prepared=prepared,
        model=model,
        key=natural_key(model.identity, task_ident, settings),
        identity={"model": model.identity, "task": task_ident, "settings": settings},
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
    bundle = _bundle_for(plan)
    if bundle.dir.exists() and not bundle.dir.is_dir():
        raise OutputError(
            f"{bundle.dir} is a file where this evaluation's bundle directory belongs; move it away and rerun"
        )
    blocked = bundle.blocked()
    if blocked is not None:
        raise OutputError(f"{blocked}; move it away (nothing was changed) and rerun the same command")
    with bundle.lock():
        bundle.finish_interrupted_swap()
        if config.overwrite:
            return _overwrite(plan, bundle, progress, model)
        done = _resume_point(plan, bundle)
        if done is None:
            log.info("reusing finished evaluation in %s (pass --overwrite to recompute)", bundle.dir)
            return EvalOutcome(bundle.dir, bundle.results(), bundle.metadata(), reused=True)
        return _run(plan, bundle, done, progress, model, hooks)


def _bundle_for(plan: EvalPlan) -> Bundle:
    """The evaluation's bundle: by its name, or the one already holding this evaluation under
    another display name (``--llm-args name=...`` changes the name, never the results)."""
    bundle = Bundle(plan.config.output_dir / plan.bundle_name)
    if bundle.dir.exists() or bundle.dir.is_symlink() or not plan.config.output_dir.is_dir():
        return bundle
    suffix = f"__{plan.key[:12]}"
    for other in sorted(plan.config.output_dir.glob(f"*{suffix}")):
        if other.name.startswith(".") or not other.is_dir():
            continue
        try:
            same = Bundle(other).metadata()["natural_key"] == plan.key
        except OutputError:
            continue
        if same:
            log.info("this evaluation is already in %s (under another name): using it", other)
            return Bundle(other)
    return bundle


def _overwrite(plan: EvalPlan, bundle: Bundle, progress: ProgressFn | None, model: Any) -> EvalOutcome:
    """Evaluate into a hidden sibling and swap it in only once complete: the old bundle stays
    authoritative until then, whatever stops the process; a rerun with --overwrite resumes it."""
    foreign = bundle.foreign_entries()
    if foreign:
        raise OutputError(
            f"--overwrite would delete {', '.join(foreign)} in {bundle.dir}, which eval_framework did not "
            "write; move them out of the bundle, then rerun with --overwrite"
        )
    unsynced = bundle.unsynced_offline_runs()
    if unsynced:
        runs = " ".join(str(p.resolve()) for p in unsynced)
        raise OutputError(
            f"--overwrite would delete {len(unsynced)} W&B run(s) logged offline in {bundle.dir} and never "
            f"synced; sync them first (wandb sync {runs}) or delete them to discard, then rerun"
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
        reason = row_problem(plan.task, plan.prepared, line.row, done)
        if reason is None:
            keep.append(line)
            done[line.row["index"]] = line.row
        else:
            bad.append(BadLine(line.number, reason, _line_text(line.row)))
    if metadata is not None:
        why = bundle.problems(scan)
        if why is None and not bad:
            return None  # complete, every row is this evaluation's, and the results are its rows'
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
            "num_fewshot": plan.identity["settings"]["num_fewshot"],
            "fewshot_sampler": task.fewshot_sampler,
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
    # metadata holds what users and models wrote (a describe(), a URL): secrets are masked there
    write_json(path, redact(data) if model is MetadataFile else data)


def _run(
    plan: EvalPlan,
    bundle: Bundle,
    done: dict[int, dict[str, Any]],
    progress: ProgressFn | None,
    model: Any | None,
    hooks: RunHooks | None,
) -> EvalOutcome:
    # A registry checkpoint's temporary files live until the evaluation ends.
    with contextlib.ExitStack() as checkpoint_files:
        return _load_and_run(plan, bundle, done, progress, model, hooks, checkpoint_files)


def _load_and_run(
    plan: EvalPlan,
    bundle: Bundle,
    done: dict[int, dict[str, Any]],
    progress: ProgressFn | None,
    model: Any | None,
    hooks: RunHooks | None,
    checkpoint_files: contextlib.ExitStack,
) -> EvalOutcome:
    config = plan.config
    started = time.time()
    pending = [(i, p) for i, p in enumerate(plan.prepared) if i not in done]
    load_s = None
    registry_details = None
    if pending and model is None:
        cleanup.raise_if_stopped()
        # Before the bundle directory exists: a model that fails to load leaves nothing behind.
        load_start = time.time()
        model, registry_details = build_model(plan.model, config.batch_size, checkpoint_files)
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
        if registry_details is not None:
            metadata["model"]["details"]["registry_checkpoint"] = registry_details
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
    # One model batch of samples at a time, each written as soon as it is scored: a kill loses at
    # most the batch in flight (larger chunks sort better, but a slow batch would cost them all).
    chunk = config.batch_size
    max_tokens = config.max_tokens or task.max_tokens
    for start in range(0, len(pending), chunk):
        cleanup.raise_if_stopped()  # a stop Python dropped (it landed in a finaliser) is acted on here
        batch = pending[start : start + chunk]
        rows = (
            score_mc(task, model, batch)
            if task.kind == "multiple_choice"
            else score_generation(task, model, batch, max_tokens)
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
    stored = as_stored(redact(metadata))
    metadata["seal"] = seal_of(stored, results, done.values())
    _write_checked(bundle.metadata_path, metadata, MetadataFile)
    log.info("finished %s on %s", plan.display, task.name)
    return EvalOutcome(bundle.dir, results, metadata, reused=False)
