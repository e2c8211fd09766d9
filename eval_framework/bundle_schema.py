"""The bundle's files as typed models: the contract every reader (sinks, reports, exporters) uses.

Every file says which schema wrote it (``schema_version``; a samples.jsonl row carries its own);
``bundle_migrate`` brings older files up to this version on read and refuses newer ones. A file
that parses as JSON but has the wrong shape (a list where a row belongs, a string index, scores
that are not numbers) is as damaged as a torn one: validating every read turns both into the same
clear handling. Unknown extra keys are kept (``extra="allow"``), so a reader never loses what a
writer added. docs/bundle.md describes every field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: 2: a finished bundle carries a seal over its files (edits after it finished are caught)
#: 3: acc_norm is per character (lm-eval's), acc_bytes per byte; few-shot ids name their split
#: 4: every file carries its schema version (samples.jsonl rows too); every field is declared
SCHEMA_VERSION = 4

_STRICT = ConfigDict(extra="allow", strict=True)


class SampleRow(BaseModel):
    """One line of samples.jsonl."""

    model_config = _STRICT

    schema_version: int
    index: int = Field(ge=0)
    id: str
    subject: str | None = None
    prompt: str
    fewshot_ids: list[str]
    target: int | str
    scores: dict[str, float]
    # multiple choice
    choices: list[str] | None = None
    logprobs: list[float] | None = None
    is_greedy: list[bool] | None = None
    prediction: int | None = None
    prediction_norm: int | None = None
    # generation
    generation: str | None = None
    extracted: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SampleRow:
        if self.choices is None:
            if self.generation is None:
                raise ValueError("a row needs 'choices' (multiple choice) or 'generation'")
            return self
        n = len(self.choices)
        if n == 0:
            raise ValueError("'choices' is empty")
        if self.logprobs is None or len(self.logprobs) != n:
            raise ValueError("'logprobs' must have one value per choice")
        if self.is_greedy is not None and len(self.is_greedy) != n:
            raise ValueError("'is_greedy' must have one value per choice")
        for name in ("target", "prediction", "prediction_norm"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < n:
                raise ValueError(f"'{name}' must be a choice index below {n}")
        return self

    def score(self, metric: str) -> float:
        """The row's score for ``metric`` (0 when the row has none)."""
        return self.scores.get(metric, 0.0)


class MetricStats(BaseModel):
    model_config = _STRICT

    value: float | str | None
    stderr: float | None
    n: int = Field(ge=0)


class Metrics(BaseModel):
    model_config = _STRICT

    overall: dict[str, MetricStats]
    subjects: dict[str, dict[str, MetricStats]] = Field(default_factory=dict)


class ResultsFile(BaseModel):
    """results.json."""

    model_config = _STRICT

    schema_version: int
    task: str
    model: str
    natural_key: str
    metrics: Metrics


class ArtifactRef(BaseModel):
    """The exact registry version a checkpoint came from (part of the evaluation's identity)."""

    model_config = _STRICT

    qualified_name: str
    digest: str | None = None


class ModelIdentity(BaseModel):
    """What identifies the model's outputs: its class and arguments (``class``, ``args``,
    ``source_sha256`` or a backend's own fields, kept as extras) and a registry checkpoint."""

    model_config = _STRICT

    artifact: ArtifactRef | None = None


class RegistryDetails(BaseModel):
    """What the registry said about the checkpoint when it was fetched (not identity)."""

    model_config = _STRICT

    aliases: list[str] = Field(default_factory=list)
    produced_by: str | None = None


class ModelDetails(BaseModel):
    """What the loaded model says of itself (its ``describe()``, kept as extras)."""

    model_config = _STRICT

    registry_checkpoint: RegistryDetails | None = None


class ModelInfo(BaseModel):
    model_config = _STRICT

    name: str
    identity: ModelIdentity
    details: ModelDetails | None = None


class TaskIdentity(BaseModel):
    model_config = _STRICT

    revision: str | None = None
    data_sha256: dict[str, str] | None = None
    prompt_version: int | None = None


class TaskInfo(BaseModel):
    model_config = _STRICT

    name: str
    kind: Literal["multiple_choice", "generation"]
    language: str
    subjects: list[str]
    num_fewshot: int = Field(ge=0)
    fewshot_sampler: str | None = None
    num_samples: int = Field(ge=1)
    num_samples_requested: int | None = None
    seed: int
    metrics: list[str] = Field(min_length=1)
    dataset: dict[str, Any]
    identity: TaskIdentity


class Framework(BaseModel):
    model_config = _STRICT

    name: str
    version: str


class Timings(BaseModel):
    model_config = _STRICT

    started_at: str
    resumed_at: str | None = None
    model_load_s: float | None = None
    finished_at: str | None = None
    duration_s: float | None = None


class Environment(BaseModel):
    model_config = _STRICT

    python: str | None = None
    platform: str | None = None
    torch: str | None = None
    transformers: str | None = None
    datasets: str | None = None
    #: the Determined trial that ran it (determined_trial_id, determined_experiment_id), or None
    cluster: dict[str, Any] | None = None


class MetadataFile(BaseModel):
    """metadata.json."""

    model_config = _STRICT

    schema_version: int
    natural_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    status: Literal["running", "complete"]
    framework: Framework
    config: dict[str, Any]
    model: ModelInfo
    task: TaskInfo
    timings: Timings
    environment: Environment
    links: dict[str, str] = Field(default_factory=dict)
    seal: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @property
    def complete(self) -> bool:
        return self.status == "complete"


def stored(model: BaseModel) -> dict[str, Any]:
    """A model as its file stores it: every declared field, plus the extras it was given (values
    JSON cannot hold, such as a model's dtype in its ``describe()``, as their text)."""
    return model.model_dump(mode="json", fallback=str)


def problem(exc: ValidationError) -> str:
    """The first validation error as 'message (field 'a.b')' (one line)."""
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    where = ".".join(str(p) for p in first["loc"])
    if not where:
        return message
    return f"{message} (field '{where}')"  # the field last: "'x_key': text" reads as a secret
