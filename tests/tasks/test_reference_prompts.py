"""Built-in tasks render prompts and choose few-shot examples as lm-evaluation-harness's own task
configs do (lm-eval 0.4.13). Each expected prompt below was written by hand from the reference
template named beside it, on rows with the awkward text real data has: stray whitespace,
HellaSwag's bracketed WikiHow markup, non-ASCII choices."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from eval_framework.errors import TaskError
from eval_framework.tasks import get_task
from eval_framework.tasks.fewshot import Shots, prepare_samples, select_samples
from eval_framework.tasks.registry import list_tasks


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _arc(i: int, question: str = "Which is a planet {i}?", texts: tuple[str, ...] = ()) -> dict:
    return {
        "id": f"Mercury_{i}",
        "question": question.format(i=i),
        "choices": {"text": list(texts or (f"Moon {i}", f"Mars {i}", "Sun", "Comet")), "label": list("ABCD")},
        "answerKey": "B",
    }


def _contexts(task, k, seed=1234, num_samples=None):
    available = task.eval_samples()
    chosen = select_samples(available, num_samples, seed)
    return chosen, prepare_samples(task, available, chosen, Shots(k, seed))


def test_arc_keeps_the_question_and_choices_as_the_dataset_has_them(tmp_path):
    # arc_easy.yaml: doc_to_text "Question: {{question}}\nAnswer:", doc_to_choice "{{choices.text}}"
    row = _arc(0, "  Which gas do plants take in?  ", ("CO₂ ", " O₂", "N₂", "Ar"))
    _write(tmp_path / "test.jsonl", [row])
    _write(tmp_path / "train.jsonl", [_arc(i) for i in range(1, 4)])
    task = get_task("ARC-Easy", data_dir=tmp_path)
    (_sample,), (prepared,) = _contexts(task, 0)
    assert prepared.contexts(task) == ["Question:   Which gas do plants take in?  \nAnswer:"] * 4
    assert prepared.continuations(task) == [" CO₂ ", "  O₂", " N₂", " Ar"]


def test_arc_fewshot_is_lm_evals_seeded_draw_in_dataset_order(tmp_path):
    train = [_arc(i) for i in range(100, 140)]
    _write(tmp_path / "test.jsonl", [_arc(i) for i in range(5)])
    _write(tmp_path / "train.jsonl", train)
    task = get_task("ARC-Challenge", data_dir=tmp_path)
    _samples, prepared = _contexts(task, 3)
    # lm-eval: one Random(1234) per task; each evaluation row, in order, draws k from the pool.
    rng = random.Random(1234)
    for p in prepared:
        expected = [train[i] for i in rng.sample(range(len(train)), 3)]
        assert p.fewshot_ids == tuple(f"train:{r['id']}" for r in expected)
        shots = "".join(f"Question: {r['question']}\nAnswer: {r['choices']['text'][1]}\n\n" for r in expected)
        assert p.prefix == shots
        assert p.contexts(task)[0] == shots + p.sample.prompt
    # A row's examples do not depend on which other rows were selected: a subset replays the
    # draws of the rows before it.
    subset, again = _contexts(task, 3, num_samples=2)
    by_id = {p.sample.id: p for p in prepared}
    assert [p.sample.id for p in again] == [s.id for s in subset]
    assert all(p == by_id[p.sample.id] for p in again)


def test_hellaswag_cleans_as_lm_eval_and_draws_one_extra(tmp_path):
    # hellaswag/utils.py: preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()),
    # preprocess strips, turns " [title]" into ". ", drops [...] and halves double spaces once
    row = {
        "ind": 7,
        "activity_label": "Home and Garden",
        "ctx_a": "  [header] How to dry a phone. [title] Take off the case.",
        "ctx_b": "turn it off.",
        "endings": [
            " Put it in rice [substeps] for a day. ",
            "Use a hair dryer [title] on high.",
            "Café.",
            "Shake.",
        ],
        "label": "0",
    }
    train = [dict(row, ind=100 + i, ctx_b=f"step {i}.", label=str(i % 4)) for i in range(30)]
    _write(tmp_path / "validation.jsonl", [row, dict(row, ind=8)])
    _write(tmp_path / "train.jsonl", train)
    task = get_task("HellaSwag", data_dir=tmp_path)
    (first, _second), prepared = _contexts(task, 0)
    assert first.prompt == "Home and Garden:  How to dry a phone.. Take off the case. Turn it off."
    assert first.choices == ("Put it in rice for a day.", "Use a hair dryer. on high.", "Café.", "Shake.")
    # hellaswag.yaml has no test split, so lm-eval treats the few-shot split as the evaluation
    # split: each row draws k + 1 and drops itself (never in train here), keeping the first k.
    _, prepared = _contexts(task, 2)
    rng = random.Random(1234)
    for p in prepared:
        expected = rng.sample(range(len(train)), 3)[:2]
        assert p.fewshot_ids == tuple(f"train:{100 + i}" for i in expected)


def test_mmlu_question_stripped_choices_not_and_dev_examples_in_order(tmp_path):
    # mmlu/default/_default_template_yaml: "{{question.strip()}}\nA. {{choices[0]}}\n...Answer:",
    # fewshot_split dev, sampler first_n; description "The following are ... about {subject}.\n\n"
    def row(i: int, question: str = "What is {i}+{i}?") -> dict:
        return {
            "question": question.format(i=i),
            "subject": "astronomy",
            "choices": [f" {i}", f"{2 * i} ", "0", "½"],
            "answer": 1,
        }

    _write(tmp_path / "astronomy" / "test.jsonl", [row(1, "  What is {i}+{i}? \n"), row(2)])
    _write(tmp_path / "astronomy" / "dev.jsonl", [row(i) for i in range(10, 16)])
    task = get_task("MMLU", subjects=("astronomy",), data_dir=tmp_path)
    samples, prepared = _contexts(task, 5)
    assert samples[0].prompt == "What is 1+1?\nA.  1\nB. 2 \nC. 0\nD. ½\nAnswer:"
    header = "The following are multiple choice questions (with answers) about astronomy.\n\n"
    shots = "".join(
        f"What is {i}+{i}?\nA.  {i}\nB. {2 * i} \nC. 0\nD. ½\nAnswer: B\n\n" for i in range(10, 15)
    )
    for p in prepared:
        assert p.prefix == header + shots  # the same five, in dev order, for every question
        # dev and test rows share ids like astronomy/0: few-shot ids name their split
        assert p.fewshot_ids == tuple(f"dev:astronomy/{i}" for i in range(5))
        assert p.sample.id.startswith("astronomy/")


def test_piqa_goal_as_the_dataset_has_it(tmp_path):
    # piqa.yaml: "Question: {{goal}}\nAnswer:", choices [sol1, sol2]
    _write(
        tmp_path / "validation.jsonl",
        [{"goal": " Dry a phone ", "sol1": "Use rice.", "sol2": " Use water", "label": 1}],
    )
    task = get_task("PIQA", data_dir=tmp_path)
    (_,), (p,) = _contexts(task, 0)
    assert p.contexts(task) == ["Question:  Dry a phone \nAnswer:"] * 2
    assert p.continuations(task) == [" Use rice.", "  Use water"]


def test_winogrande_fewshot_shows_the_right_option_then_the_rest(tmp_path):
    # winogrande preprocess: contexts sentence[:blank] + option, continuation the stripped rest
    def row(a: str, b: str, answer: str) -> dict:
        return {
            "sentence": f"{a} beat {b} because _ trained more. ",
            "option1": a,
            "option2": b,
            "answer": answer,
        }

    _write(tmp_path / "winogrande_xl" / "validation.jsonl", [row("Ann", "Bo", "2")])
    _write(tmp_path / "winogrande_xl" / "train.jsonl", [row("Cy", "Di", "1"), row("Ed", "Fa", "2")])
    task = get_task("Winogrande", data_dir=tmp_path)
    (sample,), (p,) = _contexts(task, 1)
    assert sample.target == 1
    # no test split in winogrande's yaml: draw 2, drop the row itself, keep 1
    first = random.Random(1234).sample(range(2), 2)[0]
    shot = ["Cy beat Di because Cy trained more.", "Ed beat Fa because Fa trained more."][first]
    assert p.contexts(task) == [f"{shot}\n\nAnn beat Bo because Ann", f"{shot}\n\nAnn beat Bo because Bo"]
    assert p.continuations(task) == [" trained more."] * 2


def test_winogrande_blank_at_the_end_gives_an_example_without_separators(tmp_path):
    # lm-eval's build_qa_turn: an empty answer is no answer, so neither " " nor "\n\n" follows it
    def row(a: str, b: str) -> dict:
        return {"sentence": f"{a} beat {b} because _", "option1": a, "option2": b, "answer": "1"}

    train = [row("Cy", "Di"), row("Ed", "Fa"), row("Gus", "Hal")]
    _write(tmp_path / "winogrande_xl" / "validation.jsonl", [row("Ann", "Bo")])
    _write(tmp_path / "winogrande_xl" / "train.jsonl", train)
    task = get_task("Winogrande", data_dir=tmp_path)
    (_,), (p,) = _contexts(task, 2)
    picked = [train[i] for i in random.Random(1234).sample(range(3), 3)[:2]]
    shots = "".join(f"{r['option1']} beat {r['option2']} because {r['option1']}" for r in picked)
    assert p.contexts(task) == [shots + "Ann beat Bo because Ann", shots + "Ann beat Bo because Bo"]
    assert p.continuations(task) == [" ", " "]


def test_gsm8k_text_as_given_full_answers_as_examples_and_reference_stops(tmp_path):
    # gsm8k.yaml: "Question: {{question}}\nAnswer:", few-shot target "{{answer}}", until
    # ["Question:", "</s>", "<|im_end|>"], num_fewshot 5, fewshot_split train
    train = [
        {"question": f"What is {i} + 1? ", "answer": f"{i} + 1 = {i + 1}\n\nSo:\n#### {i + 1}"}
        for i in range(8)
    ]
    _write(
        tmp_path / "test.jsonl", [{"question": "How many legs have 2 cats? ", "answer": "2 * 4 = 8\n#### 8"}]
    )
    _write(tmp_path / "train.jsonl", train)
    task = get_task("GSM8K", data_dir=tmp_path)
    assert task.stop == ("Question:", "</s>", "<|im_end|>")
    assert "\n\n" not in task.stop
    assert task.default_fewshot == 5
    (_,), (p,) = _contexts(task, 5)
    picked = random.Random(1234).sample(range(8), 5)
    shots = "".join(f"Question: {train[i]['question']}\nAnswer: {train[i]['answer']}\n\n" for i in picked)
    assert p.contexts(task) == [shots + "Question: How many legs have 2 cats? \nAnswer:"]
    assert p.fewshot_ids == tuple(f"train:{i}" for i in picked)


def test_every_builtin_task_has_its_standard_shot_count():
    shots = {info.name: info.num_fewshot for info in list_tasks()}
    assert shots["ARC"] == shots["ARC-Easy"] == shots["ARC-Challenge"] == 25
    assert (shots["HellaSwag"], shots["MMLU"], shots["Winogrande"], shots["GSM8K"], shots["PIQA"]) == (
        10,
        5,
        5,
        5,
        0,
    )
    rules = {info.name: info.fewshot_rule for info in list_tasks()}
    assert rules["MMLU"] == "first k, in order"
    assert rules["ARC"] == "seeded draw"
    assert rules["HellaSwag"] == rules["Winogrande"] == rules["PIQA"] == "seeded draw, one extra"


def test_the_standard_count_larger_than_the_pool_says_so(tmp_path):
    _write(tmp_path / "test.jsonl", [_arc(0)])
    _write(tmp_path / "train.jsonl", [_arc(i) for i in range(1, 4)])
    task = get_task("ARC-Easy", data_dir=tmp_path)
    with pytest.raises(
        TaskError, match=r"ARC-Easy's standard 25 shots are larger than .*use --num-fewshot 3"
    ):
        prepare_samples(task, task.eval_samples(), task.eval_samples(), Shots(25, 1234, k_is_default=True))
