from __future__ import annotations

import pytest

from eval_framework.errors import ConfigError
from eval_framework.llm_args import expand_multi_value_options, parse_llm_args


def test_typed_and_nested_values():
    assert parse_llm_args(["a=1", "b=2.5", "c=true", "d=x", "e.f=null", "e.g=[1, 2]", "h=", "i=a=b"]) == {
        "a": 1,
        "b": 2.5,
        "c": True,
        "d": "x",
        "e": {"f": None, "g": [1, 2]},
        "h": "",
        "i": "a=b",
    }


def test_lm_evals_comma_form_gives_several_arguments():
    assert parse_llm_args(["checkpoint=/m/ckpt,dtype=float32, device=cpu", "x.y=1,z=a,b"]) == {
        "checkpoint": "/m/ckpt",
        "dtype": "float32",
        "device": "cpu",
        "x": {"y": 1},
        "z": "a,b",  # a comma not followed by NAME= is part of the value
    }
    assert parse_llm_args(["e=[1, 2]", "f={a: 1, b: 2}"]) == {"e": [1, 2], "f": {"a": 1, "b": 2}}
    # brackets and quotes keep their commas wherever they are; empty entries are dropped
    assert parse_llm_args(["e=[1, 2],c=x,,d='p,q=r',", "g=1,"]) == {
        "e": [1, 2],
        "c": "x",
        "d": "p,q=r",
        "g": 1,
    }
    with pytest.raises(ConfigError, match="dtype is given twice"):
        parse_llm_args(["dtype=float32,dtype=bfloat16"])


@pytest.mark.parametrize("bad", ["novalue", "=1", "a..b=1", "1a=2", "a b=1"])
def test_bad_syntax(bad):
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_llm_args([bad])


def test_conflicting_nesting():
    with pytest.raises(ConfigError, match="plain value"):
        parse_llm_args(["a=1", "a.b=2"])
    with pytest.raises(ConfigError, match="nested keys"):
        parse_llm_args(["a.b=1", "a=2"])


def test_a_name_given_twice_is_refused_without_showing_values():
    with pytest.raises(ConfigError, match=r"--llm-args api_key is given twice; give it once") as info:
        parse_llm_args(["api_key=SEKRIT1", "api_key=SEKRIT2"])
    assert "SEKRIT" not in str(info.value)
    with pytest.raises(ConfigError, match=r"--llm-args a\.b is given twice"):
        parse_llm_args(["a.b=1", "a.c=2", "a.b=3"])


def test_several_values_after_one_flag():
    argv = ["--llm-args", "a=1", "b=2", "--task-name", "T", "--llm-args=c=3", "--llm-args", "d=4"]
    assert expand_multi_value_options(argv) == [
        "--llm-args",
        "a=1",
        "--llm-args",
        "b=2",
        "--task-name",
        "T",
        "--llm-args=c=3",
        "--llm-args",
        "d=4",
    ]
