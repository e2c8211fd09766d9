"""User files in other encodings: decoded by their byte-order mark, or refused with line and column."""

from __future__ import annotations

import codecs

import pytest
import yaml

from eval_framework.config import load_env, read_config_file
from eval_framework.errors import ConfigError, TaskError
from eval_framework.tasks.local_data import read_rows
from eval_framework.textfiles import read_text, yaml_error


@pytest.mark.parametrize(
    "encoded",
    [
        codecs.BOM_UTF8 + "naïve: 1\n".encode(),
        codecs.BOM_UTF16_LE + "naïve: 1\n".encode("utf-16-le"),
        codecs.BOM_UTF16_BE + "naïve: 1\n".encode("utf-16-be"),
    ],
)
def test_marked_encodings_are_decoded(tmp_path, encoded):
    path = tmp_path / "f.yaml"
    path.write_bytes(encoded)
    assert read_text(path, "f", ConfigError) == "naïve: 1\n"


def test_other_encodings_are_refused_with_line_and_column(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_bytes(b"a: 1\nname: caf" + "é".encode("latin-1") + b"\n")
    with pytest.raises(
        ConfigError, match=r"f is not UTF-8 text \(byte 0xe9 at line 2, column 10\); save it as UTF-8"
    ):
        read_text(path, "f", ConfigError)


def test_utf16_without_its_byte_order_mark_is_refused_as_not_utf8(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes("llm_name: hf\n".encode("utf-16-le"))
    with pytest.raises(ConfigError, match=r"c is not UTF-8 text \(a NUL byte at line 1, column 2: UTF-16"):
        read_text(path, "c", ConfigError)
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_config_file(path)


def test_config_env_and_data_files_in_latin1_are_refused_clearly(tmp_path, monkeypatch):
    latin = b"x: caf" + "é".encode("latin-1") + b"\n"
    (tmp_path / "run.yaml").write_bytes(latin)
    with pytest.raises(ConfigError, match=r"--config .*run.yaml is not UTF-8 text \(byte 0xe9 at line 1"):
        read_config_file(tmp_path / "run.yaml")
    (tmp_path / ".env").write_bytes(b"OPENAI_API_KEY=caf\xe9\n")
    with pytest.raises(ConfigError, match=r"env file .*\.env is not UTF-8 text"):
        load_env(tmp_path / ".env")
    for name in ("rows.jsonl", "rows.csv", "rows.json"):
        (tmp_path / name).write_bytes(b'{"q": "caf\xe9"}\n')
        with pytest.raises(TaskError, match=rf"data file .*{name} is not UTF-8 text"):
            read_rows(tmp_path / name)


def test_a_utf8_bom_in_a_jsonl_file_is_fine(tmp_path):
    (tmp_path / "rows.jsonl").write_bytes(codecs.BOM_UTF8 + b'{"q": "a"}\n{"q": "b"}\n')
    assert read_rows(tmp_path / "rows.jsonl") == [{"q": "a"}, {"q": "b"}]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"q": 1}\n3\n', r"rows.jsonl:2 holds a number, not a JSON object"),
        ('{"q": 1}\n"text"\n', r"rows.jsonl:2 holds a string, not a JSON object"),
        ("[1, 2]\n", r"rows.jsonl:1 holds a list, not a JSON object"),
        ('{"q": 1}\n{"q": \n', r"rows.jsonl:2 is not valid JSON"),
    ],
)
def test_jsonl_rows_of_the_wrong_shape_name_the_line(tmp_path, content, says):
    (tmp_path / "rows.jsonl").write_text(content)
    with pytest.raises(TaskError, match=says):
        read_rows(tmp_path / "rows.jsonl")


def test_json_of_the_wrong_shape(tmp_path):
    (tmp_path / "rows.json").write_text('{"rows": []}')
    with pytest.raises(
        TaskError, match="holds an object; fix the file: it must hold a JSON list of row objects"
    ):
        read_rows(tmp_path / "rows.json")
    (tmp_path / "rows.json").write_text('[{"q": 1}, 5]')
    with pytest.raises(TaskError, match="item 1 of the list is a number"):
        read_rows(tmp_path / "rows.json")


def test_yaml_syntax_errors_are_one_line_with_file_line_column(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("name: x\nprompt: 'a\n  b: [\n")
    try:
        yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        error = yaml_error(path, "task file t.yaml", exc, ConfigError)
    message = str(error)
    assert "\n" not in message
    assert f"{path}:" in message
    assert "fix the syntax" in message
