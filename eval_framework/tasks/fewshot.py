"""Deterministic sample subsets, few-shot selection and prompt assembly."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval_framework.errors import TaskError
from eval_framework.tasks.base import Sample, Task


def select_samples(samples: Sequence[Sample], num_samples: int | None, seed: int) -> list[Sample]:
    """The first ``num_samples`` of a seeded shuffle, kept in dataset order (all when None)."""
    if num_samples is None or num_samples >= len(samples):
        return list(samples)
    chosen = sorted(random.Random(seed).sample(range(len(samples)), num_samples))
    return [samples[i] for i in chosen]


def _same_row(a: Sample, b: Sample) -> bool:
    """The same item, whatever its id: lm-eval compares documents by content."""
    return a.content() == b.content()


def _others(pool: Sequence[Sample], sample: Sample) -> list[Sample]:
    return [s for s in pool if not _same_row(s, sample)]


def _draw(
    pool: Sequence[Sample], k: int, sample: Sample, rng: random.Random, same_split: bool
) -> list[Sample]:
    """One sample's examples, as lm-eval's default sampler draws them: ``k`` from the pool or, when
    the pool counts as the evaluation split, ``k + 1`` with the evaluated row dropped."""
    if not same_split:
        return rng.sample(pool, k)
    if len(pool) > k:
        drawn = _others(rng.sample(pool, k + 1), sample)[:k]
        if len(drawn) == k:
            return drawn
    # Copies of the evaluated row were drawn (or the pool has no spare row): draw from the rest.
    return rng.sample(_others(pool, sample), k)


def _checked_pool(task: Task, sample: Sample, k: int, k_is_default: bool) -> list[Sample]:
    pool = task.fewshot_pool(sample)
    usable = len(_others(pool, sample)) if task.fewshot_same_split else len(pool)
    if k > usable:
        where = f" for subject {sample.subject}" if sample.subject else ""
        asked = f"{task.name}'s standard {k} shots are" if k_is_default else f"--num-fewshot {k} is"
        raise TaskError(
            f"{asked} larger than the few-shot pool of {task.name}{where} ({usable} examples); "
            f"use --num-fewshot {usable} or fewer"
        )
    return pool


@dataclass(frozen=True)
class Shots:
    """How many few-shot examples, drawn with which seed; ``k_is_default``: the task's standard
    count (not --num-fewshot), for the message when the pool is too small."""

    k: int
    seed: int
    k_is_default: bool = False


def fewshot_examples(
    task: Task, available: Sequence[Sample], selected: Sequence[Sample], shots: Shots
) -> list[list[Sample]]:
    """The few-shot examples of each selected sample, by the task's rule (``task.fewshot_sampler``).

    ``first_n``: the pool's first ``k`` in order (the evaluated row left out). ``random``:
    lm-eval's default rule: one ``Random(seed)`` per pool, drawing for each evaluation row in
    dataset order. A row's examples depend only on its place in the dataset, never on which other
    rows were selected: the draws of unselected rows before it are replayed.
    """
    k = shots.k
    if k == 0:
        return [[] for _ in selected]
    position = {id(s): i for i, s in enumerate(available)}
    wanted: dict[int, list[Sample]] = {position[id(s)]: [] for s in selected}
    streams: dict[Any, list[int]] = {}
    for i, s in enumerate(available):
        streams.setdefault(task.fewshot_stream(s), []).append(i)
    for indices in streams.values():
        needed = [i for i in indices if i in wanted]
        if not needed:
            continue
        pool = _checked_pool(task, available[needed[0]], k, shots.k_is_default)
        if task.fewshot_sampler == "first_n":
            for i in needed:
                wanted[i] = (_others(pool, available[i]) if task.fewshot_same_split else pool)[:k]
            continue
        rng = random.Random(shots.seed)
        last = needed[-1]
        for i in indices:
            drawn = _draw(pool, k, available[i], rng, task.fewshot_same_split)
            if i in wanted:
                wanted[i] = drawn
            if i == last:
                break
    return [wanted[position[id(s)]] for s in selected]


def render_example(task: Task, example: Sample) -> str:
    """A solved example as it appears in a few-shot prompt (without the separator after it)."""
    return f"{_question(example)}{task.continuation_prefix}{_answer(task, example)}"


def _shot(task: Task, example: Sample) -> str:
    """One example with its separators. An answer given as text that is empty (a Winogrande blank
    that ends the sentence) is no answer to lm-eval: the question alone, with no separator."""
    answer_is_text = task.kind == "generation" or bool(example.choice_prompts)
    if answer_is_text and _answer(task, example) == "":
        return _question(example)
    return render_example(task, example) + task.fewshot_separator


def _question(example: Sample) -> str:
    index = int(example.target) if example.choice_prompts else 0
    return example.choice_prompts[index] if example.choice_prompts else example.prompt


def _answer(task: Task, example: Sample) -> str:
    if task.kind == "generation":
        return example.answer_text if example.answer_text is not None else str(example.target)
    return example.choices[int(example.target)]


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


def prepare_samples(
    task: Task, available: Sequence[Sample], selected: Sequence[Sample], shots: Shots
) -> list[PreparedSample]:
    """``selected`` (a subset of ``available``, the task's evaluation rows in order) with their
    header and ``shots.k`` few-shot examples. Few-shot ids name the split they come from
    (``dev:astronomy/0``), so they are never mistaken for evaluation rows."""
    source = task.fewshot_source()
    prepared = []
    examples = fewshot_examples(task, available, selected, shots)
    for sample, chosen in zip(selected, examples, strict=True):
        prefix = task.header(sample) + "".join(_shot(task, ex) for ex in chosen)
        prepared.append(PreparedSample(sample, tuple(f"{source}:{ex.id}" for ex in chosen), prefix))
    return prepared


def prepare(task: Task, sample: Sample, k: int, seed: int) -> PreparedSample:
    """One sample as a full evaluation of its task would prepare it."""
    available = task.eval_samples()
    match = next((s for s in available if s is sample), None) or next(
        (s for s in available if s == sample), None
    )
    if match is None:
        raise ValueError(f"sample {sample.id!r} is not one of {task.name}'s evaluation rows")
    return prepare_samples(task, available, [match], Shots(k, seed))[0]
