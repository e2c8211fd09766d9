"""What a bundle looks like as a W&B run: a pure function of the bundle directory.

Live logging and ``eval_framework upload`` both apply this spec, so they produce the same run id,
group, config, summary, table and results artifact.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eval_framework.bundle_io import canonical_json
from eval_framework.bundle_schema import MetadataFile, MetricStats, RegistryDetails, ResultsFile, TaskIdentity
from eval_framework.redact import redact
from eval_framework.results import Bundle
from eval_framework.sinks.base import wanted
from eval_framework.sinks.wandb_names import (
    GROUP_MAX,
    JOB_TYPE_MAX,
    RUN_NAME_MAX,
    artifact_name,
    metric_key,
    shorten,
    tag,
)

Mode = Literal["online", "offline", "disabled"]
RESULTS_ARTIFACT_TYPE = "eval-results"
#: Non-JSON bundle files at least this large are stored gzip-compressed in the results artifact.
COMPRESS_ABOVE = 256 * 1024
#: Where a bundle keeps what W&B needs locally: run directories (offline runs included, for a
#: later ``wandb sync``) and the staged results-artifact files.
WANDB_SUBDIR = "wandb"


@dataclass(frozen=True)
class WandbOptions:
    """The ``--wandb-*`` flags."""

    project: str
    entity: str | None = None
    group: str | None = None
    run_id: str | None = None
    tags: tuple[str, ...] = ()
    mode: Mode | None = None  #: None: online when a key is configured, else offline
    upload_results: bool = True
    registry: str | None = None  #: link the results artifact into wandb-registry-<this>
    table_rows: int = 1000
    #: more lineage inputs (WANDB_ADDITIONAL_ARTIFACT_REFERENCES when not given)
    additional_artifacts: tuple[str, ...] | None = None
    # What ``export --dest wandb`` may set besides (None: the defaults derived from the bundle).
    name: str | None = None  #: the run's display name
    notes: str | None = None  #: the run's description
    job_type: str | None = None
    extra_config: dict[str, Any] = field(default_factory=dict)  #: added to the run config
    log_metrics: tuple[str, ...] = ()  #: summary metrics to log (substring match); all when empty

    def extra_inputs(self) -> tuple[str, ...]:
        if self.additional_artifacts is not None:
            return self.additional_artifacts
        raw = os.environ.get("WANDB_ADDITIONAL_ARTIFACT_REFERENCES", "")
        return tuple(r.strip() for r in raw.split(",") if r.strip())


@dataclass(frozen=True)
class CheckpointInfo:
    name: str
    version: str | None
    aliases: tuple[str, ...] = ()
    qualified_name: str | None = None  #: set for registry checkpoints (the lineage input)
    digest: str | None = None
    produced_by: str | None = None


@dataclass(frozen=True)
class RunSpec:
    project: str
    entity: str | None
    run_id: str
    group: str
    job_type: str
    name: str
    tags: tuple[str, ...]
    notes: str
    config: dict[str, Any]
    summary: dict[str, Any]
    checkpoint: CheckpointInfo
    task: str
    content_hash: str
    artifact_name: str
    artifact_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def artifact_alias(self) -> str:
        return f"content-{self.content_hash[:16]}"


def checkpoint_info(metadata: MetadataFile) -> CheckpointInfo:
    """The checkpoint a bundle evaluated: its registry name and version, or the model's name."""
    model = metadata.model
    artifact = model.identity.artifact
    registry = (model.details.registry_checkpoint if model.details else None) or RegistryDetails()
    if artifact is not None:
        qualified = artifact.qualified_name
        name, _, version = qualified.rsplit("/", 1)[-1].partition(":")
        return CheckpointInfo(
            name=name,
            version=version or None,
            aliases=tuple(registry.aliases),
            qualified_name=qualified,
            digest=artifact.digest,
            produced_by=registry.produced_by,
        )
    return CheckpointInfo(name=model.name, version=None)


def derived_run_id(natural_key: str) -> str:
    """The run id of an evaluation: re-running, resuming or uploading it again updates one run."""
    return f"eval-{natural_key[:24]}"


def content_hash(bundle: Bundle) -> str:
    """Hash of what an evaluation produced (scores and per-sample rows, as stored): equal results,
    equal hash."""
    digest = hashlib.sha256()
    digest.update(canonical_json(bundle.stored_results()).encode())
    for row in bundle.stored_rows():
        digest.update(canonical_json(row).encode())
    return digest.hexdigest()


def summary_values(task: str, results: ResultsFile, patterns: tuple[str, ...] = ()) -> dict[str, Any]:
    """``<task>/<metric>`` with ``/stderr`` and ``/n`` siblings, then per subject (``patterns``:
    only the metrics whose names contain one, as ``log_metrics`` says)."""
    out: dict[str, Any] = {}

    def put(prefix: str, block: dict[str, MetricStats]) -> None:
        for metric, stats in sorted(block.items()):
            if not wanted(metric, patterns):
                continue
            key = f"{prefix}/{metric_key(metric)}"
            if isinstance(stats.value, str):  # non-numeric results never become plotted series
                out[f"{key}/text"] = stats.value
                continue
            out[key] = stats.value
            out[f"{key}/stderr"] = stats.stderr
            out[f"{key}/n"] = stats.n

    put(task, results.metrics.overall)
    for subject, block in sorted(results.metrics.subjects.items()):
        put(f"{task}/{subject}", block)
    return out


def dataset_revision(identity: TaskIdentity) -> str | None:
    """One comparable value for the runs table: the pinned hub revision of a built-in task, or
    a digest of a file task's data files (``sha256:<12 hex>``)."""
    if identity.revision:
        return identity.revision
    files = identity.data_sha256
    if not files:
        return None
    joined = "".join(f"{k}={v};" for k, v in sorted(files.items()))
    return "sha256:" + hashlib.sha256(joined.encode()).hexdigest()[:12]


def build_spec(bundle: Bundle, options: WandbOptions) -> RunSpec:
    metadata = bundle.metadata()
    task_meta = metadata.task
    task = task_meta.name
    ckpt = checkpoint_info(metadata)
    label = f"{ckpt.name}:{ckpt.version}" if ckpt.version else ckpt.name
    k, n = task_meta.num_fewshot, task_meta.num_samples
    hf_url = metadata.links.get("hf_upload_url")
    config = {
        "checkpoint_name": ckpt.name,
        "checkpoint_version": ckpt.version,
        "checkpoint_aliases": list(ckpt.aliases),
        "checkpoint_qualified_name": ckpt.qualified_name,
        "checkpoint_digest": ckpt.digest,
        "checkpoint_produced_by": ckpt.produced_by,
        "model_name": metadata.model.name,
        "llm_name": metadata.config.get("llm_name"),
        "model_args": metadata.config.get("llm_args", {}),
        "task_name": task,
        "task_kind": task_meta.kind,
        "language": task_meta.language,
        "num_fewshot": k,
        "num_samples": n,
        "num_samples_requested": task_meta.num_samples_requested,
        "subjects": task_meta.subjects,
        "seed": task_meta.seed,
        "metrics": task_meta.metrics,
        "dataset": task_meta.dataset,
        "dataset_revision": dataset_revision(task_meta.identity),
        "prompt_version": task_meta.identity.prompt_version,
        "eval_framework_version": metadata.framework.version,
        "evaluation_hash": metadata.natural_key,  # "key" in a name would be masked as a secret
        "bundle": bundle.dir.name,
        "hf_upload_url": hf_url,
        "additional_artifacts": list(options.extra_inputs()),
    }
    complete = bundle.is_complete()
    summary = summary_values(task, bundle.results(), options.log_metrics) if complete else {}
    chash = content_hash(bundle) if complete else ""
    notes = options.notes or (f"Full results: {hf_url}" if hf_url else f"Results bundle: {bundle.dir.name}")
    config = {**options.extra_config, **config}  # the evaluation's own keys win a clash
    tags = tuple(dict.fromkeys(tag(t) for t in (*options.tags, task, f"{k}-shot") if t.strip()))
    return RunSpec(
        project=options.project,
        entity=options.entity,
        run_id=options.run_id or derived_run_id(metadata.natural_key),
        group=shorten(options.group or label, GROUP_MAX),
        job_type=shorten(options.job_type or task, JOB_TYPE_MAX),
        name=shorten(options.name or f"{label} {task} {k}-shot n={n}", RUN_NAME_MAX),
        tags=tags,
        notes=notes,
        config=redact(config),
        summary=summary,
        checkpoint=ckpt,
        task=task,
        content_hash=chash,
        artifact_name=artifact_name(f"eval-{bundle.dir.name}"),
        artifact_metadata=redact(
            {
                "task": task,
                "checkpoint": label,
                "evaluation_hash": metadata.natural_key,
                "content_hash": chash,
                "summary": summary,
            }
        ),
    )


def table_rows(bundle: Bundle, limit: int) -> tuple[list[str], list[list[Any]]]:
    """Per-sample rows, wrong answers first, at most ``limit``; numbers stay numbers."""
    rows = bundle.samples()
    task = bundle.metadata().task
    main = task.metrics[0]
    ordered = sorted(rows, key=lambda r: (r.score(main) >= 1.0, r.index))[: max(limit, 0)]
    if task.kind == "generation":
        columns = ["index", "id", "subject", "prompt", "target", "generation", "extracted", "correct", main]
        data = [[r.index, r.id, r.subject, r.prompt, str(r.target), r.generation, r.extracted,
                 r.score(main) >= 1.0, r.score(main)] for r in ordered]  # fmt: skip
        return columns, data
    columns = ["index", "id", "subject", "prompt", "choices", "target", "prediction", "correct", main,
               "logprob_target", "logprob_prediction", "logprobs"]  # fmt: skip
    data = []
    for r in ordered:
        # a valid multiple-choice row has all of these (SampleRow checks it)
        choices, logprobs = r.choices or [], r.logprobs or []
        target, pred = int(r.target), int(r.prediction or 0)
        shown = json.dumps(choices, ensure_ascii=False)
        data.append([r.index, r.id, r.subject, r.prompt, shown, choices[target], choices[pred],
                     r.score(main) >= 1.0, r.score(main), float(logprobs[target]), float(logprobs[pred]),
                     json.dumps(logprobs)])  # fmt: skip
    return columns, data


def stage_artifact_files(bundle: Bundle) -> dict[str, Path]:
    """Copies of the bundle files for the results artifact, inside the bundle (so an offline run
    syncs from wherever the bundle is readable). metadata.json without its ``links`` (they change
    after logging); large non-JSON files gzip-compressed, deterministically."""
    staging = bundle.dir / WANDB_SUBDIR / "artifact"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    files: dict[str, Path] = {}
    metadata = redact({k: v for k, v in bundle.stored_metadata().items() if k != "links"})  # a hand edit too
    (staging / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n")
    files["metadata.json"] = staging / "metadata.json"
    for source in (bundle.results_path, bundle.samples_path, bundle.log_path):
        if not source.is_file():
            continue
        if source.suffix != ".json" and source.stat().st_size >= COMPRESS_ABOVE:
            target = staging / f"{source.name}.gz"
            with (
                source.open("rb") as src,
                target.open("wb") as raw,
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            ):
                shutil.copyfileobj(src, gz)
        else:
            target = staging / source.name
            shutil.copyfile(source, target)
        files[target.name] = target
    return files
