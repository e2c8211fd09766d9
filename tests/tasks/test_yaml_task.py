"""Task YAML files over local JSONL/CSV/Parquet data."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval_framework.errors import TaskDefinitionError, TaskError
from eval_framework.tasks import get_task


def _task(tmp_path: Path, body: str, data: dict[str, str]) -> Path:
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "task.yaml"
    path.write_text(body)
    return path


def test_csv_generation_task_with_regex(tmp_path):
    path = _task(
        tmp_path,
        "name: capitals\nkind: generation\nlanguage: de\ndata: {eval: d.csv}\n"
        "prompt: 'Hauptstadt von {land}?'\ntarget: stadt\nanswer_regex: 'Antwort: (\\w+)'\n",
        {"d.csv": "land,stadt\nFrankreich,Paris\nItalien,Rom\n"},
    )
    task = get_task(str(path))
    assert task.language == "de"
    assert task.metrics == ("exact_match",)
    s = task.eval_samples()[1]
    assert s.prompt == "Hauptstadt von Italien?"
    assert s.target == "Rom"
    assert task.extract_answer("Antwort: Rom.") == "Rom"
    assert task.extract_answer("keine") == ""


def test_parquet_data(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"q": ["a?", "b?"], "opts": [["x", "y"], ["y", "x"]], "t": [1, 0]}), tmp_path / "d.parquet"
    )
    path = _task(tmp_path, "name: p\ndata: {eval: d.parquet}\nprompt: '{q}'\nchoices: opts\ntarget: t\n", {})
    samples = get_task(str(path)).eval_samples()
    assert [s.target for s in samples] == [1, 0]
    assert samples[0].choices == ("x", "y")


def test_choices_as_templates(tmp_path):
    path = _task(
        tmp_path,
        "name: t\ndata: {eval: d.jsonl}\nprompt: '{q}'\nchoices: ['{a}', '{b}']\ntarget: t\n",
        {"d.jsonl": '{"q": "?", "a": "yes", "b": "no", "t": "no"}\n'},
    )
    s = get_task(str(path)).eval_samples()[0]
    assert s.choices == ("yes", "no")
    assert s.target == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("data: {eval: d.jsonl}\nprompt: x\ntarget: t\nchoices: c\n", "name"),
        ("name: t\nprompt: x\ntarget: t\nchoices: c\n", "data"),
        ("name: t\ndata: {eval: d.jsonl}\nprompt: x\ntarget: t\n", "(top level)"),
        ("name: t\ndata: {eval: d.jsonl}\nprompt: x\ntarget: t\nchoices: c\nkind: ranking\n", "kind"),
        ("name: t\ndata: {eval: d.jsonl, extra: 1}\nprompt: x\ntarget: t\nchoices: c\n", "data.extra"),
        (
            "name: t\ndata: {eval: d.jsonl}\nprompt: x\ntarget: t\nkind: generation\nanswer_regex: '('\n",
            "(top level)",
        ),
    ],
)
def test_malformed_yaml_points_at_field(tmp_path, body, field):
    with pytest.raises(TaskDefinitionError, match=r"task\.yaml: .*; see docs/tasks\.md") as info:
        get_task(str(_task(tmp_path, body, {})))
    named = f"(field '{field}')" in str(info.value)
    assert named if field != "(top level)" else "(field" not in str(info.value), info.value


def test_not_yaml(tmp_path):
    with pytest.raises(TaskDefinitionError, match="not valid YAML"):
        get_task(str(_task(tmp_path, "name: [unclosed\n", {})))


def test_row_errors_name_the_row_and_field(tmp_path):
    path = _task(
        tmp_path,
        "name: t\ndata: {eval: d.jsonl}\nprompt: '{question}'\nchoices: c\ntarget: t\n",
        {"d.jsonl": '{"q": "?", "c": ["a"], "t": 0}\n'},
    )
    with pytest.raises(TaskError, match=r"d\.jsonl row 0: template .* uses field 'question'"):
        get_task(str(path)).eval_samples()
    bad_target = _task(
        tmp_path,
        "name: t\ndata: {eval: e.jsonl}\nprompt: '{q}'\nchoices: c\ntarget: t\n",
        {"e.jsonl": '{"q": "?", "c": ["a", "b"], "t": 5}\n'},
    )
    with pytest.raises(TaskError, match="out of range for 2 choices"):
        get_task(str(bad_target)).eval_samples()


def test_bad_jsonl_line_is_located(tmp_path):
    path = _task(
        tmp_path,
        "name: t\ndata: {eval: d.jsonl}\nprompt: '{q}'\nchoices: c\ntarget: t\n",
        {"d.jsonl": '{"q": "?", "c": ["a"], "t": 0}\n{broken\n'},
    )
    with pytest.raises(TaskError, match=r"d\.jsonl:2 is not valid JSON"):
        get_task(str(path)).eval_samples()


@pytest.mark.parametrize(
    ("choices", "target", "index"),
    [
        (["A", "B", "C"], "B", 1),  # the choice written "B", which is also the letter B
        (["D", "C", "B", "A"], "A", 3),  # text wins over the letter's position
        (["2", "1", "0"], "0", 2),  # text wins over the index
        (["x", "y", "z"], "2", 2),
        (["x", "y", "z"], 1, 1),
        (["x", "y", "z"], "C", 2),
        (["x", "y", "z"], "y", 1),
    ],
)
def test_targets_are_choice_text_first_then_index_then_letter(tmp_path, choices, target, index):
    import json

    path = _task(
        tmp_path,
        "name: t\ndata: {eval: d.jsonl}\nprompt: '{q}'\nchoices: c\ntarget: t\n",
        {"d.jsonl": json.dumps({"q": "?", "c": choices, "t": target}) + "\n"},
    )
    assert get_task(str(path)).eval_samples()[0].target == index


def test_a_lower_case_letter_that_is_no_choice_is_refused(tmp_path):
    path = _task(
        tmp_path,
        "name: t\ndata: {eval: d.jsonl}\nprompt: '{q}'\nchoices: c\ntarget: t\n",
        {"d.jsonl": '{"q": "?", "c": ["x", "y"], "t": "b"}\n'},
    )
    with pytest.raises(TaskError, match=r"d\.jsonl row 0: target 'b' is not an index, letter or one of"):
        get_task(str(path)).eval_samples()


def test_two_rows_with_one_id_are_refused(tmp_path):
    path = _task(
        tmp_path,
        "name: t\ndata: {eval: d.jsonl}\nprompt: '{q}'\nchoices: c\ntarget: t\nid: k\n",
        {"d.jsonl": '{"q": "?", "c": ["x"], "t": 0, "k": "a"}\n{"q": "!", "c": ["x"], "t": 0, "k": "a"}\n'},
    )
    with pytest.raises(TaskError, match=r"d\.jsonl rows 0 and 1 have one id 'a'.*give every row its own id"):
        get_task(str(path)).eval_samples()


MC = "name: t\ndata: {eval: d.jsonl}\nprompt: '{q}'\nchoices: c\ntarget: t\n"


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ('{"q": null, "c": ["x", "y"], "t": 0}', r"row 0: field 'q' is null, not text or a number"),
        ('{"q": [1, 2], "c": ["x", "y"], "t": 0}', r"field 'q' is list, not text"),
        ('{"q": NaN, "c": ["x", "y"], "t": 0}', r"field 'q' is nan, not text"),
        ('{"q": "?", "c": ["x", null], "t": 0}', r"choice 1 of field 'c' is null"),
        ('{"q": "?", "c": ["x", {"a": 1}], "t": 0}', r"choice 1 of field 'c' is dict"),
        (
            '{"q": "?", "c": ["x", "y"], "t": "\\u0661"}',  # an Arabic-Indic digit one
            r"target '\u0661' is not an index, letter or one of the choices",
        ),
        ('{"q": "?", "c": ["x", "y"], "t": "C"}', r"target 'C' \(index 2\) is out of range for 2 choices"),
        ('{"q": "?", "c": ["x", "x"], "t": "x"}', r"target 'x' names 2 of the choices"),
        ('{"q": "?", "q": "!", "c": ["x"], "t": 0}', r"d\.jsonl:1 writes the key 'q' twice"),
        ("[" * 100_000, r"d\.jsonl:1 is nested too deeply to read"),
    ],
)
def test_data_values_that_are_not_text_never_reach_a_prompt(tmp_path, row, says):
    path = _task(tmp_path, MC, {"d.jsonl": row + "\n"})
    with pytest.raises(TaskError, match=says):
        get_task(str(path)).eval_samples()


@pytest.mark.parametrize("template", ["'{q!r}'", "'{q:>100000000}'", "'{q!s:10}'"])
def test_templates_take_no_conversions_or_format_specs(tmp_path, template):
    path = _task(tmp_path, MC.replace("'{q}'", template), {"d.jsonl": '{"q": "?", "c": ["x"], "t": 0}\n'})
    with pytest.raises(
        TaskDefinitionError, match="no attribute access, indexing, positional fields, conversions"
    ):
        get_task(str(path))


def test_an_id_field_the_rows_lack_and_an_empty_metrics_list_are_refused(tmp_path):
    rows = {"d.jsonl": '{"q": "?", "c": ["x"], "t": 0}\n'}
    with pytest.raises(TaskError, match=r"row 0 lacks the id field 'nosuch'"):
        get_task(str(_task(tmp_path, MC + "id: nosuch\n", rows))).eval_samples()
    with pytest.raises(TaskDefinitionError, match=r"field 'metrics'"):
        get_task(str(_task(tmp_path, MC + "metrics: []\n", rows)))
    with pytest.raises(TaskDefinitionError, match=r"name one metric twice"):
        get_task(str(_task(tmp_path, MC + "metrics: [acc, acc, acc_norm]\n", rows)))


def test_a_key_written_twice_in_a_task_file_is_refused(tmp_path):
    path = _task(tmp_path, "name: a\n" + MC, {"d.jsonl": '{"q": "?", "c": ["x"], "t": 0}\n'})
    with pytest.raises(TaskDefinitionError, match=r"task\.yaml:2:1: key 'name' is written twice"):
        get_task(str(path))


def test_subjects_on_a_task_without_subjects_are_a_usage_error(tmp_path):
    from eval_framework.errors import ConfigError

    path = _task(tmp_path, MC, {"d.jsonl": '{"q": "?", "c": ["x"], "t": 0}\n'})
    with pytest.raises(ConfigError, match=r"task t has no subjects, so --subjects s1 selects nothing"):
        get_task(str(path), ("s1",))


def test_an_unknown_key_named_like_a_secret_is_named_not_masked(cli, tmp_path):
    path = _task(tmp_path, MC + "unknown_key: 1\n", {"d.jsonl": '{"q": "?", "c": ["x"], "t": 0}\n'})
    result = cli("--llm-name", "embedded", "--task-name", path)
    assert result.code == 2, result.err
    assert "Extra inputs are not permitted (field 'unknown_key')" in result.err, result.err


def test_decimal_numbers_reach_prompts_and_answers_as_the_data_wrote_them(tmp_path):
    body = "name: g\nkind: generation\ndata: {eval: d.jsonl}\nprompt: 'Q: {q} costs {p}'\ntarget: a\n"
    path = _task(tmp_path, body, {"d.jsonl": '{"q": "tea", "p": 1e3, "a": 7.50}\n'})
    sample = get_task(str(path)).eval_samples()[0]
    assert sample.prompt == "Q: tea costs 1e3"
    assert sample.target == "7.50"


def test_a_task_without_subjects_gives_a_finished_bundle_that_is_reused_and_exported(cli, tmp_path):
    from tests.conftest import USER_MODELS

    path = _task(
        tmp_path,
        "name: arith\nkind: multiple_choice\ndata: {eval: d.jsonl}\nprompt: 'Q: {q}\\nA:'\n"
        "choices: choices\ntarget: label\nmetrics: [acc]\n",
        {"d.jsonl": '{"q": "2+2?", "choices": ["3", "4"], "label": 1}\n'
                    '{"q": "3+3?", "choices": ["6", "7"], "label": 0}\n'},
    )  # fmt: skip
    args = (
        "--models",
        USER_MODELS,
        "--llm-name",
        "HashLLM",
        "--task-name",
        path,
        "--output-dir",
        tmp_path / "out",
    )
    assert cli(*args).code == 0
    again = cli(*args)
    assert again.code == 0
    assert "Already evaluated; reusing" in again.err  # not "completing" a bundle judged inconsistent
    exported = cli(
        "export", tmp_path / "out", "--dest", "local", "--config", f'{{"output_dir": "{tmp_path / "e"}"}}'
    )
    assert exported.code == 0, exported.err
    assert "local: 1 created" in exported.out
