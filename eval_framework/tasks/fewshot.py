"""Deterministic sample subsets, few-shot selection and prompt assembly."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from eval_framework.errors import TaskError
from eval_framework.tasks.base import Sample, Task


def select_samples(samples: Sequence[Sample], num_samples: int | None, seed: int) -> list[Sample]:
    """The first ``num_samples`` of a seeded shuffle, kept in dataset order (all when None)."""
    if num_samples is None or num_samples >= len(samples):
        return list(samples)
    chosen = sorted(random.Random(seed).sample(range(len(samples)), num_samples))
    return [samples[i] for i in chosen]


def _rng_for(seed: int, sample_id: str) -> random.Random:
    # Per-sample seeding: a sample's prompt does not depend on which other samples were chosen,
    # so subsets, resumes and reruns show each sample the same examples.
    digest = hashlib.sha256(f"{seed}\0{sample_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def select_fewshot(task: Task, sample: Sample, k: int, seed: int) -> list[Sample]:
    if k == 0:
        return []
    pool = [s for s in task.fewshot_pool(sample) if s.id != sample.id or s.prompt != sample.prompt]
    if k > len(pool):
        where = f" for subject {sample.subject}" if sample.subject else ""
        raise TaskError(
            f"--num-fewshot {k} is larger than the few-shot pool of {task.name}{where} "
            f"({len(pool)} examples); use --num-fewshot {len(pool)} or fewer"
        )
    return _rng_for(seed, sample.id).sample(pool, k)


def render_example(task: Task, example: Sample) -> str:
    """A solved example as it appears in a few-shot prompt."""
    if task.kind == "generation":
        answer = example.answer_text if example.answer_text is not None else str(example.target)
        return f"{example.prompt}{task.continuation_prefix}{answer}"
    index = int(example.target)
    prompt = example.choice_prompts[index] if example.choice_prompts else example.prompt
    return f"{prompt}{task.continuation_prefix}{example.choices[index]}"


@dataclass(frozen=True)
class PreparedSample:
    """A sample with its few-shot context resolved: what the model actually sees."""

    sample: Sample
    fewshot_ids: tuple[str, ...]
    prefix: str  #: header and few-shot examples, ending in the separator (or empty)

    def contexts(self, task: Task) -> list[str]:
        """One context per choice (multiple choice), or the single prompt (generation)."""
        s = self.sample
        if task.kind == "generation":
            return [self.prefix + s.prompt]
        prompts = s.choice_prompts or (s.prompt,) * len(s.choices)
        return [self.prefix + p for p in prompts]

    def continuations(self, task: Task) -> list[str]:
        return [task.continuation_prefix + c for c in self.sample.choices]


def prepare(task: Task, sample: Sample, k: int, seed: int) -> PreparedSample:
    shots = select_fewshot(task, sample, k, seed)
    parts = [render_example(task, ex) for ex in shots]
    prefix = task.header(sample) + "".join(p + task.fewshot_separator for p in parts)
    return PreparedSample(sample, tuple(ex.id for ex in shots), prefix)
