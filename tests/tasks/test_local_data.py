"""Local data files: text that cannot be a prompt is refused where it is."""

from __future__ import annotations

import pytest

from eval_framework.errors import TaskError
from eval_framework.tasks.local_data import read_rows


def test_a_lone_surrogate_escape_is_named_by_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"q": "fine"}\n{"q": "half \\ud83d of a pair"}\n')
    with pytest.raises(TaskError, match=r"d\.jsonl:2 holds text that is not valid Unicode .*\\ud83d"):
        read_rows(path)


def test_a_lone_surrogate_in_a_json_list_is_named_by_item(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"q": "fine"}, {"q": ["nested \\uDC00"]}]')
    with pytest.raises(TaskError, match=r"item 1 of the list holds text that is not valid Unicode"):
        read_rows(path)


def test_an_escaped_pair_is_one_character(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"q": "smile \\ud83d\\ude00"}\n')
    assert read_rows(path) == [{"q": "smile \U0001f600"}]


def test_a_csv_column_named_twice_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("q,q,a\n1,2,x\n")
    with pytest.raises(TaskError, match=r"d\.csv:1 names the column 'q' twice"):
        read_rows(path)
