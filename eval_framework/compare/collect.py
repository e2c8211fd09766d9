"""Finding finished bundles and reading them as (version, task) evaluations.

Inputs are bundle directories, directories holding bundles, or a registry collection
(``wandb-registry-model/llama-sft``, ``llama-sft``): the bundles under the output directory whose
checkpoint is a version of it. A bundle still being written (a sweep in progress) is skipped and
said; one that is damaged or edited stops the comparison, since leaving a version out in silence
would change what the comparison says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from eval_framework.bundle_io import BundleDamaged
from eval_framework.bundle_schema import MetadataFile
from eval_framework.errors import ConfigError, OutputError
from eval_framework.registry.reference import CheckpointRef, parse_reference
from eval_framework.results import Bundle

#: A sample's key for pairing: subject and id, then its occurrence (ids may repeat in a dataset).
SampleKey = tuple[str | None, str, int]
_REGISTRY_VERSION = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class Version:
    """A checkpoint version: ``label`` is what users see and pass to ``--baseline``."""

    label: str
    sort_key: tuple[object, ...]
    checkpoint: str  #: the collection (registry) or the model's name (local checkpoints)
    version: str | None  #: the registry version (``v7``), None for a local checkpoint
    qualified_name: str | None = None
    path: str | None = None  #: a local checkpoint's directory (``--llm-args checkpoint=``)


@dataclass(frozen=True)
class MetricValue:
    """A metric's aggregate from results.json (``mean`` is a string for a non-numeric metric)."""

    mean: float | str | None
    stderr: float | None
    n: int
    per_sample: bool
    binary: bool = False  #: every per-sample score is 0 or 1 (an accuracy): shown in percent


@dataclass(frozen=True)
class Evaluation:
    """One finished bundle: a version on a task, its aggregates and per-sample scores."""

    bundle: Path
    version: Version
    task: str  #: the task's label in the comparison (its name, with the shot count when needed)
    task_name: str
    num_fewshot: int
    num_samples: int
    finished_at: str | None
    metrics: dict[str, MetricValue]
    #: per-sample scores of the metrics every row holds, keyed by sample
    scores: dict[str, dict[SampleKey, float]] = field(repr=False)


@dataclass
class Collected:
    evaluations: list[Evaluation]
    skipped: list[tuple[Path, str]]
    warnings: list[str]


def natural_key(text: str) -> tuple[object, ...]:
    """Digits compared as numbers: ``step-900`` before ``step-1000``."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", text)
    )


def version_of(metadata: MetadataFile) -> Version:
    """The checkpoint a bundle evaluated: its registry collection and version, or the model's name."""
    artifact = metadata.model.identity.artifact
    if artifact is not None:
        qualified = artifact.qualified_name
        collection, _, version = qualified.rsplit("/", 1)[-1].partition(":")
        match = _REGISTRY_VERSION.match(version)
        number = int(match.group(1)) if match else -1
        return Version(
            label=version or collection,
            sort_key=(0, collection, number, version),
            checkpoint=collection,
            version=version or None,
            qualified_name=qualified,
        )
    name = metadata.model.name
    path = metadata.config.get("llm_args", {}).get("checkpoint")
    where = str(path) if isinstance(path, str) and path else None
    return Version(
        label=name, sort_key=(1, natural_key(where or name)), checkpoint=name, version=None, path=where
    )


def belongs_to(metadata: MetadataFile, ref: CheckpointRef) -> bool:
    """Whether a bundle's checkpoint is a version of the collection ``ref`` names. A ``-local``
    twin is a collection of its own, numbered apart: pass it by its own name."""
    artifact = metadata.model.identity.artifact
    if artifact is None:
        return False
    path = artifact.qualified_name.split(":", 1)[0].split("/")
    entity, project, name = ([None] * 3 + path)[-3:]
    if name != ref.name or project != ref.project:
        return False
    return ref.entity is None or entity == ref.entity


def _collection_ref(text: str) -> CheckpointRef:
    if ":" in text:
        raise ConfigError(
            f"{text} is not an existing path, and as a registry reference it names one version; pass the "
            f"collection without ':<alias>' ({text.split(':', 1)[0]}) to compare its versions"
        )
    try:
        return parse_reference(text)
    except ConfigError as exc:
        raise ConfigError(
            f"{text} is neither an existing path nor a registry collection ({exc}); pass bundle "
            "directories, a directory holding bundles, or a collection such as wandb-registry-model/llama-sft"
        ) from exc


def find_inputs(inputs: Sequence[str | Path], output_dir: Path) -> tuple[list[Path], list[str]]:
    """Bundle directories for ``inputs`` (a collection: its versions' bundles under ``output_dir``),
    and warnings about bundles there that could not be read to tell."""
    from eval_framework.sinks.publish import find_bundles

    paths: list[Path] = []
    refs: list[CheckpointRef] = []
    warnings: list[str] = []
    for item in inputs:
        text = str(item)
        # as sweep reads its argument: what exists, a glob, or a path-like start is local
        if Path(text).exists() or any(c in text for c in "*?[") or text.startswith(("/", ".", "~", "inv-")):
            paths.append(Path(text).expanduser())
        else:
            refs.append(_collection_ref(text))
    found = find_bundles(paths) if paths else []
    if refs:
        if not output_dir.is_dir():
            raise ConfigError(
                f"no output directory {output_dir} to look for versions of {', '.join(map(_name, refs))} in; "
                "pass --output-dir with the directory the evaluations wrote to"
            )
        candidates: dict[Path, MetadataFile | None] = {}
        for path in find_bundles([output_dir]):
            try:
                candidates[path] = Bundle(path).metadata()
            except OutputError as exc:  # unreadable: whose it is cannot be told; said, not hidden
                candidates[path] = None
                warnings.append(
                    f"could not read {path} to tell which checkpoint it evaluated ({_first(exc)})"
                )
        for ref in refs:
            chosen = [p for p, meta in candidates.items() if meta is not None and belongs_to(meta, ref)]
            if not chosen:
                raise ConfigError(
                    f"no finished evaluations of {_name(ref)} under {output_dir}; evaluate its versions "
                    "first (or pass --output-dir with where they were written)"
                )
            found += chosen
    return list(dict.fromkeys(p.resolve() for p in found)), warnings


def _name(ref: CheckpointRef) -> str:
    return f"{ref.entity + '/' if ref.entity else ''}{ref.project}/{ref.name}"


def read_evaluation(path: Path) -> Evaluation | str:
    """A finished bundle as an Evaluation, or why it is still unfinished (skipped, not an error).
    A damaged or edited bundle raises OutputError (exit 5) saying what to do."""
    bundle = Bundle(path)
    if not bundle.exists():
        raise OutputError(
            f"{path} holds no evaluation bundle (no metadata.json); pass bundle directories or the "
            "directory that holds them"
        )
    try:
        running = bundle.stored_metadata()["status"] != "complete"
    except BundleDamaged as exc:
        raise BundleDamaged(
            f"cannot compare {path}: {_first(exc)}; rerun that evaluation with --overwrite, or move the "
            "bundle away and compare the rest"
        ) from exc
    if running:
        return "still running (or interrupted): its metadata.json says status running"
    why, advice = bundle.unfinished()
    if why != "complete":
        raise OutputError(
            f"cannot compare {path}: {why}; {advice}, or move the bundle away and compare the rest"
        )
    metadata, results, rows = bundle.metadata(), bundle.results(), bundle.samples()
    scores: dict[str, dict[SampleKey, float]] = {}
    names = list(dict.fromkeys([*metadata.task.metrics, *results.metrics.overall]))
    per_sample = [m for m in names if rows and all(m in r.scores for r in rows)]
    seen: dict[tuple[str | None, str], int] = {}
    keys: list[SampleKey] = []
    for row in rows:
        base = (row.subject, row.id)
        seen[base] = seen.get(base, -1) + 1
        keys.append((row.subject, row.id, seen[base]))
    for metric in per_sample:
        scores[metric] = {key: float(row.scores[metric]) for key, row in zip(keys, rows, strict=True)}
    metrics = {}
    for name in names:
        stats = results.metrics.overall.get(name)
        if stats is None:
            continue
        binary = name in scores and all(v in (0.0, 1.0) for v in scores[name].values())
        metrics[name] = MetricValue(stats.value, stats.stderr, stats.n, name in scores, binary)
    task = metadata.task
    return Evaluation(
        bundle=path,
        version=version_of(metadata),
        task=task.name,
        task_name=task.name,
        num_fewshot=task.num_fewshot,
        num_samples=task.num_samples,
        finished_at=metadata.timings.finished_at,
        metrics=metrics,
        scores=scores,
    )


def _first(exc: Exception) -> str:
    return str(exc).split(";")[0]


def collect(inputs: Sequence[str | Path], output_dir: Path = Path("outputs")) -> Collected:
    """Read every finished bundle the inputs name; one per (version, task)."""
    paths, unreadable = find_inputs(inputs, output_dir)
    evaluations: list[Evaluation] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        read = read_evaluation(path)
        if isinstance(read, str):
            skipped.append((path, read))
        else:
            evaluations.append(read)
    if not evaluations:
        raise ConfigError(
            f"no finished evaluations to compare among {len(paths)} bundle(s) "
            f"({skipped[0][1] if skipped else 'none'}); wait for the evaluations to finish, or pass other "
            "bundles"
        )
    evaluations, warnings = _one_per_cell(_label_tasks(_label_versions(evaluations)))
    return Collected(evaluations, skipped, [*unreadable, *warnings])


def _label_versions(evaluations: list[Evaluation]) -> list[Evaluation]:
    """Registry versions of one collection are ``v7``; of several, ``collection:v7``. Local
    checkpoints go by their name (a directory's last part), or by their path when two
    directories share a name (``run-a/step-100``, ``run-b/step-100``)."""
    collections = {e.version.checkpoint for e in evaluations if e.version.version is not None}
    paths: dict[str, set[str | None]] = {}
    for e in evaluations:
        if e.version.version is None:
            paths.setdefault(e.version.label, set()).add(e.version.path)
    out = []
    for e in evaluations:
        if e.version.version is not None and len(collections) > 1:
            e = replace(e, version=replace(e.version, label=f"{e.version.checkpoint}:{e.version.version}"))
        elif e.version.version is None and len(paths[e.version.label]) > 1 and e.version.path:
            e = replace(e, version=replace(e.version, label=e.version.path))
        out.append(e)
    return out


def _label_tasks(evaluations: list[Evaluation]) -> list[Evaluation]:
    """A task evaluated with several shot counts is several tasks: ``ARC (25-shot)``."""
    shots: dict[str, set[int]] = {}
    for e in evaluations:
        shots.setdefault(e.task_name, set()).add(e.num_fewshot)
    return [
        replace(e, task=f"{e.task_name} ({e.num_fewshot}-shot)") if len(shots[e.task_name]) > 1 else e
        for e in evaluations
    ]


def _one_per_cell(evaluations: list[Evaluation]) -> tuple[list[Evaluation], list[str]]:
    """Several bundles of one version on one task (other sample counts or seeds): the one with
    most samples, then the latest, is compared, and the others are named."""
    cells: dict[tuple[str, str], list[Evaluation]] = {}
    for e in evaluations:
        cells.setdefault((e.version.label, e.task), []).append(e)
    kept: list[Evaluation] = []
    warnings: list[str] = []
    for (version, task), group in cells.items():
        group.sort(key=lambda e: (e.num_samples, e.finished_at or "", str(e.bundle)), reverse=True)
        kept.append(group[0])
        if len(group) > 1:
            others = ", ".join(str(e.bundle) for e in group[1:])
            warnings.append(
                f"{version} on {task} has {len(group)} bundles; comparing {group[0].bundle} (most samples, "
                f"latest) and not {others}; pass the bundles to compare to choose"
            )
    return kept, warnings
