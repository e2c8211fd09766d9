"""Task and Sample types."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

TaskKind = Literal["multiple_choice", "generation"]


@dataclass(frozen=True)
class Sample:
    """One evaluation item, already formatted.

    Multiple choice: ``target`` is the index into ``choices`` (the continuations scored after
    ``prompt``), or, when ``choice_prompts`` is set, each choice has its own prompt and the
    continuations are scored after it (Winogrande-style partial scoring).
    Generation: ``target`` is the gold answer; ``answer_text`` is what a few-shot example shows.
    """

    id: str
    prompt: str
    target: int | str
    choices: tuple[str, ...] = ()
    choice_prompts: tuple[str, ...] = ()
    subject: str | None = None
    answer_text: str | None = None


class Task(ABC):
    """A benchmark: where samples come from and how they are scored."""

    name: str = ""
    kind: TaskKind = "multiple_choice"
    language: str = "en"
    description: str = ""
    metrics: tuple[str, ...] = ("acc", "acc_norm")
    fewshot_separator: str = "\n\n"
    continuation_prefix: str = " "
    stop: tuple[str, ...] = ("\n\n",)
    max_tokens: int = 256
    #: Bumped when prompt formatting changes, so old results get a new identity.
    prompt_version: int = 1

    def __init__(self, subjects: tuple[str, ...] = (), data_dir: Path | None = None) -> None:
        self.selected_subjects = subjects
        self.data_dir = data_dir

    @property
    def available_subjects(self) -> tuple[str, ...]:
        return ()

    @abstractmethod
    def eval_samples(self) -> list[Sample]:
        """All evaluation samples in dataset order (the subset is chosen by the runner)."""

    @abstractmethod
    def fewshot_pool(self, sample: Sample) -> list[Sample]:
        """Candidates for few-shot examples of ``sample`` (same subject where that matters)."""

    def header(self, sample: Sample) -> str:
        """Text placed once before the few-shot examples (e.g. MMLU's subject line)."""
        return ""

    def extract_answer(self, generation: str) -> str:
        """Turn a model's generation into the answer compared with ``target``."""
        return generation.strip()

    def matches(self, prediction: str, target: str) -> bool:
        """Exact match of an extracted prediction against the gold answer."""
        return prediction.strip() == str(target).strip()

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "language": self.language,
            "subjects": list(self.selected_subjects),
            "prompt_version": self.prompt_version,
        }

    def dataset_info(self) -> dict[str, Any]:
        """Dataset identity for metadata (path, revision, splits)."""
        return {}


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def normalize_number(text: str) -> str:
    """'1,234.00' -> '1234', '$5' -> '5'; non-numbers are stripped and lowered."""
    cleaned = text.strip().replace("$", "").rstrip(".")
    match = _NUMBER.search(cleaned)
    if not match:
        return cleaned.lower()
    value = match.group(0).replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value
