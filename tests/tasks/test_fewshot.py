"""Deterministic subsets and few-shot selection."""

from __future__ import annotations

from eval_framework.tasks import get_task
from eval_framework.tasks.fewshot import prepare, select_samples


def test_subset_is_seeded_and_in_dataset_order():
    samples = get_task("tiny-letters").eval_samples()
    a = select_samples(samples, 20, seed=7)
    assert a == select_samples(samples, 20, seed=7)
    assert a != select_samples(samples, 20, seed=8)
    positions = [samples.index(s) for s in a]
    assert positions == sorted(positions)
    assert len(set(positions)) == 20
    assert select_samples(samples, None, 7) == samples == select_samples(samples, 10_000, 7)


def test_fewshot_is_per_sample_and_excludes_the_sample():
    task = get_task("tiny-letters")
    samples = task.eval_samples()
    first = {s.id: prepare(task, s, 3, seed=1) for s in samples[:10]}
    # Choosing a different subset does not change any sample's prompt.
    again = {s.id: prepare(task, s, 3, seed=1) for s in select_samples(samples, 50, seed=99)}
    for sid in set(first) & set(again):
        assert first[sid] == again[sid]
    assert any(prepare(task, s, 3, seed=2).fewshot_ids != first[s.id].fewshot_ids for s in samples[:10])
    for p in first.values():
        assert f"fewshot:{p.sample.id}" not in p.fewshot_ids
        assert len(set(p.fewshot_ids)) == 3


def test_fewshot_from_the_same_subject():
    task = get_task("tiny-letters")
    for s in task.eval_samples()[:5] + task.eval_samples()[-5:]:
        pool = {f"fewshot:{x.id}": x.subject for x in task.fewshot_pool(s)}
        assert all(pool[i] == s.subject for i in prepare(task, s, 4, seed=0).fewshot_ids)


def test_prompt_format_of_the_embedded_task():
    task = get_task("tiny-letters")
    s = task.eval_samples()[0]
    p = prepare(task, s, 1, seed=0)
    (ctx, *_), conts = p.contexts(task), p.continuations(task)
    assert ctx.endswith(f"{s.subject}: ") is False
    assert ctx.endswith("->")
    assert p.prefix.count("\n") == 1
    assert all(c.startswith(" ") for c in conts)
