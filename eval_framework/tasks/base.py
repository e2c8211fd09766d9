"""Task and Sample types."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

TaskKind = Literal["multiple_choice", "generation"]
FewshotSampler = Literal["random", "first_n"]


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

    def content(self) -> tuple[Any, ...]:
        """Everything but the id: two rows with equal content are one item."""
        return (self.prompt, self.target, self.choices, self.choice_prompts, self.subject, self.answer_text)


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
    #: Shots when --num-fewshot is not given: the benchmark's standard count.
    default_fewshot: int = 0
    #: How few-shot examples are chosen (docs/tasks.md): "random", lm-eval's default sampler (one
    #: seeded draw per evaluation row, in dataset order), or "first_n", the pool's first k in order.
    fewshot_sampler: FewshotSampler = "random"
    #: Whether the few-shot pool counts as the evaluation split: each draw then takes one extra
    #: example and drops the evaluated row (lm-eval does this for tasks without a test split).
    fewshot_same_split: bool = False
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

    def fewshot_source(self) -> str:
        """The name few-shot ids carry (``train:17``): the split or file the pool comes from."""
        return "fewshot"

    def fewshot_stream(self, sample: Sample) -> Any:
        """Samples with the same stream share one few-shot pool and one seeded draw sequence
        (lm-eval: one task per dataset config)."""
        return sample.subject

    def fewshot_rule(self) -> str:
        """How examples are chosen, in words (``eval_framework tasks``, docs/tasks.md)."""
        if self.fewshot_sampler == "first_n":
            return "first k, in order"
        return "seeded draw, one extra" if self.fewshot_same_split else "seeded draw"

    def header(self, sample: Sample) -> str:
        """Text placed once before the few-shot examples (e.g. MMLU's subject line)."""
        return ""

    def extract_answer(self, generation: str) -> str:
        """Turn a model's generation into the answer compared with ``target``."""
        return generation.strip()

    def matches(self, prediction: str, target: str) -> bool:
        """Exact match of an extracted prediction against the gold answer."""
        return prediction.strip() == str(target).strip()

    def score_generation(self, generation: str, sample: Sample) -> tuple[str, dict[str, float]]:
        """The answer extracted from a generation, and its score for each of ``metrics``."""
        extracted = self.extract_answer(generation)
        return extracted, {"exact_match": float(self.matches(extracted, str(sample.target)))}

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "language": self.language,
            "subjects": list(self.selected_subjects),
            "prompt_version": self.prompt_version,
            "fewshot_sampler": self.fewshot_sampler,
            "metrics": sorted(self.metrics),
        }

    def dataset_info(self) -> dict[str, Any]:
        """Dataset identity for metadata (path, revision, splits)."""
        return {}
