"""The shapes of a bundle's files: every read goes through these models.

A file that parses as JSON but has the wrong shape (a list where a row belongs, a string index,
scores that are not numbers) is as damaged as a torn one; validating every read turns both into
the same clear handling instead of a traceback or a silently dropped row. Unknown extra keys are
kept (``extra="allow"``), so a reader never loses what a writer added.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: 2: a finished bundle carries a seal over its files (edits after it finished are caught)
#: 3: acc_norm is per character (lm-eval's), acc_bytes per byte; few-shot ids name their split
SCHEMA_VERSION = 3

_STRICT = ConfigDict(extra="allow", strict=True)


class SampleRow(BaseModel):
    """One line of samples.jsonl."""

    model_config = _STRICT

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
    model_config = _STRICT

    qualified_name: str
    digest: str | None = None


class ModelIdentity(BaseModel):
    model_config = _STRICT

    artifact: ArtifactRef | None = None


class RegistryDetails(BaseModel):
    model_config = _STRICT

    aliases: list[str] = Field(default_factory=list)
    produced_by: str | None = None


class ModelDetails(BaseModel):
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
    environment: dict[str, Any]
    links: dict[str, str] = Field(default_factory=dict)
    seal: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


def problem(exc: ValidationError) -> str:
    """The first validation error as 'message (field 'a.b')' (one line)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"{first['msg']} (field '{where}')"  # the field last: "'x_key': text" reads as a secret
