"""Built-in loaders on small fixture files in each dataset's real schema (via --task-data-dir)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval_framework.errors import ConfigError, DatasetUnavailableError, TaskError
from eval_framework.tasks import get_task
from eval_framework.tasks.fewshot import prepare
from tests.conftest import USER_MODELS


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _arc_row(i: int, key: str = "B") -> dict:
    return {
        "id": f"Mercury_{i}",
        "question": f"Which is a planet {i}?",
        "choices": {"text": ["Moon", "Mars", "Sun", "Comet"], "label": ["A", "B", "C", "D"]},
        "answerKey": key,
    }


def test_arc_both_sets_as_subjects(tmp_path):
    for config in ("ARC-Easy", "ARC-Challenge"):
        _write(tmp_path / config / "test.jsonl", [_arc_row(1), _arc_row(2, "D")])
        _write(tmp_path / config / "train.jsonl", [_arc_row(3), _arc_row(4)])
    task = get_task("arc", data_dir=tmp_path)  # names are case-insensitive
    samples = task.eval_samples()
    assert [s.subject for s in samples] == ["ARC-Easy", "ARC-Easy", "ARC-Challenge", "ARC-Challenge"]
    assert samples[0].prompt == "Question: Which is a planet 1?\nAnswer:"
    assert samples[0].choices == ("Moon", "Mars", "Sun", "Comet")
    assert samples[0].target == 1
    assert samples[1].target == 3
    easy_only = get_task("ARC", subjects=("ARC-Easy",), data_dir=tmp_path)
    assert {s.subject for s in easy_only.eval_samples()} == {"ARC-Easy"}
    p = prepare(task, samples[0], 1, seed=1)
    assert p.prefix.endswith("Answer: Mars\n\n")


def test_arc_numeric_labels(tmp_path):
    row = _arc_row(1, "3") | {"choices": {"text": ["a", "b", "c", "d"], "label": ["1", "2", "3", "4"]}}
    _write(tmp_path / "test.jsonl", [row])
    assert get_task("ARC-Challenge", data_dir=tmp_path).eval_samples()[0].target == 2


def test_hellaswag(tmp_path):
    row = {
        "ind": 24,
        "activity_label": "Roof shingle removal",
        "ctx_a": "A man is sitting on a roof.",
        "ctx_b": "he",
        "ctx": "A man is sitting on a roof. he",
        "split": "val",
        "split_type": "indomain",
        "source_id": "activitynet~v_-JhWjGDPHMY",
        "label": "3",
        "endings": [
            "is using wrap to wrap a pair of skis.",
            "is ripping level tiles off.",
            "is holding a rubik's cube.",
            "starts pulling up roofing on a roof [title] Done.",
        ],
    }
    _write(tmp_path / "validation.jsonl", [row])
    sample = get_task("HellaSwag", data_dir=tmp_path).eval_samples()[0]
    assert sample.prompt == "Roof shingle removal: A man is sitting on a roof. He"
    assert sample.target == 3
    assert sample.choices[3] == "starts pulling up roofing on a roof. Done."


def test_mmlu_subjects_header_and_pool(tmp_path):
    def row(i: int) -> dict:
        return {
            "question": f"What is {i}+{i}?",
            "subject": "abstract_algebra",
            "choices": [str(i), str(2 * i), "0", "1"],
            "answer": 1,
        }

    _write(tmp_path / "abstract_algebra" / "test.jsonl", [row(1), row(2)])
    _write(tmp_path / "abstract_algebra" / "dev.jsonl", [row(3), row(4)])
    task = get_task("MMLU", subjects=("abstract_algebra",), data_dir=tmp_path)
    sample = task.eval_samples()[0]
    assert sample.prompt == "What is 1+1?\nA. 1\nB. 2\nC. 0\nD. 1\nAnswer:"
    assert sample.choices == ("A", "B", "C", "D")
    assert sample.target == 1
    prepared = prepare(task, sample, 2, seed=0)
    assert prepared.prefix.startswith(
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
    )
    assert prepared.prefix.count("Answer: B") == 2
    with pytest.raises(ConfigError, match="did you mean anatomy"):
        get_task("MMLU", subjects=("anatomyy",))


def test_winogrande_partial_scoring(tmp_path):
    row = {
        "sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
        "option1": "Sarah",
        "option2": "Maria",
        "answer": "1",
    }
    _write(tmp_path / "winogrande_xl" / "validation.jsonl", [row])
    task = get_task("Winogrande", data_dir=tmp_path)
    sample = task.eval_samples()[0]
    prepared = prepare(task, sample, 0, seed=0)
    assert prepared.contexts(task) == [
        "Sarah was a much better surgeon than Maria so Sarah",
        "Sarah was a much better surgeon than Maria so Maria",
    ]
    assert prepared.continuations(task) == [" always got the harder cases."] * 2
    assert sample.target == 0


def test_piqa(tmp_path):
    _write(
        tmp_path / "validation.jsonl",
        [{"goal": "Dry a phone", "sol1": "Use rice.", "sol2": "Use water.", "label": 0}],
    )
    sample = get_task("PIQA", data_dir=tmp_path).eval_samples()[0]
    assert sample.prompt == "Question: Dry a phone\nAnswer:"
    assert sample.choices == ("Use rice.", "Use water.")


def test_gsm8k_targets_and_extraction(tmp_path):
    rows = [
        {
            "question": "Tom has 3 apples and buys 1,200 more. How many?",
            "answer": "3 + 1200 = <<3+1200=1203>>1203\n#### 1,203",
        }
    ]
    _write(tmp_path / "test.jsonl", rows)
    _write(tmp_path / "train.jsonl", rows)
    task = get_task("GSM8K", data_dir=tmp_path)
    sample = task.eval_samples()[0]
    assert sample.target == "1203"  # lm-eval's reference after its ignored patterns
    # strict-match: the first "#### <number>"; flexible-extract: the last number anywhere
    cases = {
        "so 1203 apples.\n#### 1,203": ("1,203", 1.0, 1.0),
        "#### 1203.": ("1203.", 1.0, 1.0),  # a final period is ignored
        "The answer is $1,203.": ("[invalid]", 0.0, 1.0),
        "He has 1203, then 5": ("[invalid]", 0.0, 0.0),
        "no number": ("[invalid]", 0.0, 0.0),
    }
    for text, (extracted, strict, flexible) in cases.items():
        got, scores = task.score_generation(text, sample)
        assert got == extracted, text
        assert scores["exact_match"] == strict, text
        assert scores["exact_match_flexible"] == flexible, text


def test_schema_mismatch_names_the_file_row_and_field(tmp_path):
    _write(
        tmp_path / "validation.jsonl", [{"goal": "x", "sol1": "a", "sol2": "b", "label": 0}, {"goal": "x"}]
    )
    with pytest.raises(
        TaskError, match=r"PIQA: .*validation.jsonl row 1 lacks the field 'label' \(row fields: goal\)"
    ):
        get_task("PIQA", data_dir=tmp_path).eval_samples()
    _write(tmp_path / "arc" / "test.jsonl", [_arc_row(1), _arc_row(2, "Z")])
    with pytest.raises(
        TaskError, match=r"test.jsonl row 1 does not fit .*answerKey 'Z' is not one of the labels A, B, C, D"
    ):
        get_task("ARC-Easy", data_dir=tmp_path / "arc").eval_samples()


def test_missing_local_split(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="no 'validation' file for PIQA"):
        get_task("PIQA", data_dir=tmp_path).eval_samples()


def test_builtin_task_end_to_end_from_local_copy(cli, tmp_path):
    _write(tmp_path / "data" / "test.jsonl", [_arc_row(i, "AB"[i % 2]) for i in range(10)])
    _write(tmp_path / "data" / "train.jsonl", [_arc_row(i) for i in range(10, 15)])
    result = cli(
        "--models",
        USER_MODELS,
        "--llm-name",
        "HashLLM",
        "--task-name",
        "ARC-Easy",
        "--task-data-dir",
        tmp_path / "data",
        "--num-fewshot",
        "3",
        "--num-samples",
        "6",
        "--output-dir",
        tmp_path / "o",
    )
    assert result.code == 0, result.err
    (bundle,) = [p for p in (tmp_path / "o").iterdir() if p.is_dir()]
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["task"]["dataset"]["revision"] == "210d026faf9955653af8916fad021475a3f00453"
    assert meta["task"]["num_samples"] == 6
