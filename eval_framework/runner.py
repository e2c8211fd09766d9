"""The evaluation loop: plan, then resume or reuse, score in batches, stream rows, aggregate.

Order matters for "bad input loses nothing": everything that can be checked without the model
(task, prompts, model class and arguments, identity, an unsynced W&B run in the way of
--overwrite) is checked before anything is created, and the model is loaded before the bundle
directory is made, so a failure there leaves no half-made bundle behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

from eval_framework import cleanup
from eval_framework.bundle_io import ensure_writable, write_json
from eval_framework.bundle_log import bundle_log
from eval_framework.bundle_scan import BadLine, SampleLine
from eval_framework.bundle_schema import (
    SCHEMA_VERSION,
    Environment,
    Framework,
    MetadataFile,
    ModelDetails,
    ModelInfo,
    ResultsFile,
    TaskInfo,
    Timings,
    stored,
)
from eval_framework.bundle_seal import as_stored, seal_of
from eval_framework.config import EvalConfig
from eval_framework.errors import OutputError
from eval_framework.eval_plan import EvalPlan, make_plan
from eval_framework.metrics import aggregate
from eval_framework.model_plan import ModelPlan, build_model
from eval_framework.models.auto_batch import BatchSizeSetting, chunk_size
from eval_framework.models.base import BaseLLM
from eval_framework.redact import redact
from eval_framework.results import Bundle
from eval_framework.scoring import row_problem, scored_chunks
from eval_framework.tasks.fewshot import PreparedSample
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
    results: ResultsFile
    metadata: MetadataFile
    reused: bool  #: True when a finished bundle was found and nothing was recomputed


class SharedModel:
    """The model of one or more evaluations (an invocation's tasks), built at most once, when the
    first of them has a sample to score; a registry checkpoint's files live until ``close``."""

    def __init__(self, plan: ModelPlan, batch_size: BatchSizeSetting, given: BaseLLM | None = None) -> None:
        self.plan = plan
        self.batch_size = batch_size
        self.model = given
        self.registry_details: dict[str, Any] | None = None
        self.load_s: float | None = None
        self._files = contextlib.ExitStack()

    def get(self) -> BaseLLM:
        if self.model is None:
            cleanup.raise_if_stopped()
            start = time.time()
            self.model, self.registry_details = build_model(self.plan, self.batch_size, self._files)
            self.load_s = round(time.time() - start, 3)
        return self.model

    def close(self) -> None:
        self._files.close()

    def __enter__(self) -> SharedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Job:
    """One evaluation being written into one bundle (the overwrite's staging bundle included)."""

    plan: EvalPlan
    bundle: Bundle
    done: dict[int, dict[str, Any]]  #: rows already in the bundle, by sample index
    source: SharedModel
    progress: ProgressFn | None = None
    hooks: RunHooks | None = None
    started: float = field(default_factory=time.time)
    #: where it runs, for metadata.environment.cluster (a Determined trial's ids)
    cluster: dict[str, Any] | None = None

    @property
    def pending(self) -> list[tuple[int, PreparedSample]]:
        return [(i, p) for i, p in enumerate(self.plan.prepared) if i not in self.done]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _environment() -> Environment:
    versions: dict[str, str | None] = {}
    for package in ("torch", "transformers", "datasets"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = None
    return Environment(python=sys.version.split()[0], platform=platform.platform(), **versions)


def evaluate(
    config: EvalConfig,
    progress: ProgressFn | None = None,
    model: BaseLLM | None = None,
    hooks: RunHooks | None = None,
) -> EvalOutcome:
    """Run (or resume, or reuse) one evaluation and return its bundle (``model``: an instance to
    use instead of loading the configured one)."""
    plan = make_plan(config)
    with SharedModel(plan.model, config.batch_size, model) as source:
        return evaluate_plan(plan, source, progress, hooks)


def plan_all(configs: Sequence[EvalConfig]) -> list[EvalPlan]:
    """The plans of an invocation's evaluations, all made before any model loads. They share one
    model (the configs differ only in their task settings): a registry checkpoint is looked up
    once, so every task evaluates the same version even if an alias moves meanwhile."""
    plans: list[EvalPlan] = []
    for config in configs:
        plans.append(make_plan(config, plans[0].model if plans else None))
    return plans


def evaluate_plan(
    plan: EvalPlan,
    source: SharedModel,
    progress: ProgressFn | None = None,
    hooks: RunHooks | None = None,
    cluster: dict[str, Any] | None = None,
) -> EvalOutcome:
    """Run (or resume, or reuse) one planned evaluation with the model ``source`` gives
    (``cluster``: the Determined trial running it, recorded in its metadata)."""
    config = plan.config
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
            return _overwrite(plan, bundle, source, progress, cluster)
        done = _resume_point(plan, bundle)
        if done is None:
            log.info("reusing finished evaluation in %s (pass --overwrite to recompute)", bundle.dir)
            return EvalOutcome(bundle.dir, bundle.results(), bundle.metadata(), reused=True)
        return _load_and_run(_Job(plan, bundle, done, source, progress, hooks, cluster=cluster))


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
            same = Bundle(other).metadata().natural_key == plan.key
        except OutputError:
            continue
        if same:
            log.info("this evaluation is already in %s (under another name): using it", other)
            return Bundle(other)
    return bundle


def _overwrite(
    plan: EvalPlan,
    bundle: Bundle,
    source: SharedModel,
    progress: ProgressFn | None,
    cluster: dict[str, Any] | None = None,
) -> EvalOutcome:
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
        outcome = _load_and_run(_Job(plan, staging, done, source, progress, cluster=cluster))
        results, metadata = outcome.results, outcome.metadata
    bundle.promote(staging)
    return EvalOutcome(bundle.dir, results, metadata, reused=False)


def _resume_point(plan: EvalPlan, bundle: Bundle) -> dict[int, dict[str, Any]] | None:
    """None when ``bundle`` is a complete evaluation of ``plan``; else the sample rows that can be
    kept (damaged or foreign rows are set aside and recomputed)."""
    if not bundle.dir.exists():
        return {}
    metadata = bundle.metadata() if bundle.exists() else None
    if metadata is not None and metadata.natural_key != plan.key:
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
        if metadata.complete and not bad:  # bad rows are reported one by one below
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


def _metadata(job: _Job) -> MetadataFile:
    """metadata.json for this run (status running); what an earlier run of it recorded (the start
    time, the model's details, links) is kept."""
    plan, config, task = job.plan, job.plan.config, job.plan.task
    previous = job.bundle.metadata() if job.bundle.exists() else None
    return MetadataFile(
        schema_version=SCHEMA_VERSION,
        natural_key=plan.key,
        status="running",
        framework=Framework(name="eval_framework", version=__version__),
        config=config.redacted(),
        model=ModelInfo.model_validate(
            {
                "name": plan.display,
                "identity": plan.identity["model"],
                "details": previous.model.details if previous else None,
            }
        ),
        task=TaskInfo.model_validate(
            {
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
            }
        ),
        timings=Timings(
            started_at=previous.timings.started_at if previous else _now(),
            resumed_at=_now() if job.done else None,
        ),
        environment=_environment().model_copy(update={"cluster": job.cluster}),
        links=previous.links if previous else {},
    )


def _write_metadata(job: _Job, metadata: MetadataFile) -> None:
    # metadata holds what users and models wrote (a describe(), a URL): secrets are masked there
    write_json(job.bundle.metadata_path, redact(stored(metadata)))


def _load_and_run(job: _Job) -> EvalOutcome:
    bundle = job.bundle
    pending = job.pending
    # The load time belongs to the bundle whose run built the model (an invocation's other tasks
    # paid none); the registry checkpoint's details belong to every bundle evaluated with it.
    loaded_here = bool(pending) and job.source.model is None
    # Before the bundle directory exists: a model that fails to load leaves nothing behind.
    model = job.source.get() if pending else job.source.model
    load_s = job.source.load_s if loaded_here else None
    registry_details = job.source.registry_details
    try:
        bundle.dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {bundle.dir}: {exc.strerror}; check --output-dir") from exc
    metadata = _metadata(job)
    metadata.timings.model_load_s = load_s
    if pending:
        describe = getattr(model, "describe", None)
        details = dict(describe()) if callable(describe) else {}
        if registry_details is not None:
            details["registry_checkpoint"] = registry_details
        metadata.model.details = ModelDetails.model_validate(details)
    _write_metadata(job, metadata)
    try:
        if job.hooks is not None:
            job.hooks.started(bundle)
        with bundle_log(bundle.log_path):
            return _score_all(job, model, metadata)
    except BaseException as exc:
        if job.hooks is not None:
            job.hooks.interrupted(exc)
        raise


def _score_all(job: _Job, model: BaseLLM | None, metadata: MetadataFile) -> EvalOutcome:
    plan, bundle, done, task = job.plan, job.bundle, job.done, job.plan.task
    pending = job.pending
    log.info("evaluating %s on %s: %d samples (%d already done) -> %s", plan.display, task.name,
             len(plan.prepared), len(done), bundle.dir)  # fmt: skip
    total, finished = len(plan.prepared), len(done)
    if job.progress:
        job.progress(finished, total)
    # One model batch of samples at a time (longest prompts first), each chunk written as soon as
    # it is scored: a kill loses at most the batch in flight.
    max_tokens = plan.config.max_tokens or task.max_tokens
    cleanup.raise_if_stopped()  # a stop Python dropped (it landed in a finaliser) is acted on here
    if pending:
        assert model is not None  # loaded whenever a sample is pending
        for rows in scored_chunks(task, model, pending, chunk_size(plan.config.batch_size), max_tokens):
            bundle.append_samples(rows)
            done.update((row["index"], row) for row in rows)
            finished += len(rows)
            if job.progress:
                job.progress(finished, total)
            cleanup.raise_if_stopped()
    results = ResultsFile.model_validate(
        {
            "schema_version": SCHEMA_VERSION,
            "task": task.name,
            "model": plan.display,
            "natural_key": plan.key,
            "metrics": aggregate([done[i] for i in sorted(done)], task.metrics),
        }
    )
    write_json(bundle.results_path, stored(results))
    metadata.status = "complete"
    metadata.timings.finished_at = _now()
    metadata.timings.duration_s = round(time.time() - job.started, 3)
    metadata.seal = seal_of(as_stored(redact(stored(metadata))), stored(results), done.values())
    _write_metadata(job, metadata)
    log.info("finished %s on %s", plan.display, task.name)
    return EvalOutcome(bundle.dir, results, metadata, reused=False)
