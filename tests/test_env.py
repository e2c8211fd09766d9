"""The one table of environment variables: .env.example mirrors it, values are read by its
parsers with errors that name the variable, and its secrets are masked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eval_framework import env
from eval_framework.errors import ConfigError
from eval_framework.redact import scrub


def test_env_example_lists_exactly_the_variables_read():
    text = (Path(__file__).parents[1] / ".env.example").read_text()
    listed = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE)
    assert sorted(listed) == sorted(var.name for var in env.VARS)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("WANDB_CACHE_SKIP", "", True),
        ("WANDB_CACHE_SKIP", "off", False),
        ("WANDB_HTTP_TIMEOUT", "  ", None),
        ("WANDB_HTTP_TIMEOUT", "2.5", 2.5),
        ("WANDB_ARTIFACT_WAIT_TIMEOUT_SEC", "0", 0.0),
        ("EVAL_FRAMEWORK_DOWNLOAD_STALL_SEC", "", 60.0),
    ],
)
def test_values_are_read_by_their_parser(monkeypatch, name, raw, expected):
    monkeypatch.setenv(name, raw)
    assert env.get(name) == expected


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("WANDB_CACHE_SKIP", "maybe", "WANDB_CACHE_SKIP='maybe' is not true or false; set true or false"),
        ("WANDB_HTTP_TIMEOUT", "soon", "WANDB_HTTP_TIMEOUT='soon' is not a number of seconds"),
        ("WANDB_HTTP_TIMEOUT", "0", "WANDB_HTTP_TIMEOUT='0' must be above 0 seconds"),
        ("WANDB_ARTIFACT_WAIT_TIMEOUT_SEC", "-1", "must be 0 or more seconds"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_to_set(monkeypatch, name, raw, says):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError) as info:
        env.get(name)
    assert says in str(info.value)


def test_every_secret_variable_is_masked_in_text(monkeypatch):
    for i, name in enumerate(env.SECRET_NAMES):
        monkeypatch.setenv(name, f"value-of-secret-{i:02d}-xyz")
    text = " ".join(f"{name} was value-of-secret-{i:02d}-xyz" for i, name in enumerate(env.SECRET_NAMES))
    assert "value-of-secret" not in scrub(text)
