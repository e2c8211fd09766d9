"""Secret names by whole words, with an allow-list; secrets scrubbed from free text."""

from __future__ import annotations

import json

import pytest

from eval_framework.config import EvalConfig
from eval_framework.redact import REDACTED, is_secret_key, redact, register_secret, scrub


@pytest.mark.parametrize(
    "name",
    ["api_key", "API_KEY", "hf_token", "HF_TOKEN", "access_token", "awsSecretAccessKey", "password",
     "db-password", "client.secret", "WANDB_API_KEY", "AWS_ACCESS_KEY_ID", "apiKey", "authorization",
     "auth", "private_key", "credentials", "key", "token", "aws_access_key_id", "sig", "x-amz-signature"],
)  # fmt: skip
def test_secret_names(name):
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    ["max_tokens", "num_tokens", "max_new_tokens", "pad_token", "eos_token_id", "add_bos_token",
     "tokenizer", "keyword", "monkey", "natural_key", "batch_size", "checkpoint", "author",
     "tokens_per_second", "passes", "token_budget", "password_length", "secret_level", "key_path",
     "token_file", "auth_mode"],
)  # fmt: skip
def test_not_secret_names(name):
    assert not is_secret_key(name)


def test_every_result_changing_setting_is_stored_as_given_and_secrets_never():
    config = EvalConfig(
        llm_name="hf",
        llm_args={"checkpoint": "/ckpt", "max_tokens": 8, "max_new_tokens": 16, "add_bos_token": True,
                  "pad_token": "<pad>", "api_key": "sk-abcdefgh12345", "nested": {"hf_token": "hf_secret99"}},
        task_name="ARC",
        num_fewshot=3,
        num_samples=50,
        subjects=("a",),
        seed=7,
        max_tokens=8,
        batch_size=4,
    )  # fmt: skip
    stored = config.redacted()
    for field in ("llm_name", "task_name", "num_fewshot", "num_samples", "seed", "max_tokens", "batch_size"):
        assert stored[field] == json.loads(json.dumps(config.model_dump(mode="json")[field])), field
    assert stored["subjects"] == ["a"]
    args = stored["llm_args"]
    assert args["max_tokens"] == 8
    assert args["max_new_tokens"] == 16
    assert args["add_bos_token"] is True
    assert args["pad_token"] == "<pad>"
    assert args["checkpoint"] == "/ckpt"
    assert args["api_key"] == REDACTED
    assert args["nested"]["hf_token"] == REDACTED
    assert "sk-abcdefgh12345" not in json.dumps(stored)
    assert "hf_secret99" not in json.dumps(stored)


def test_free_text_loses_assigned_secrets_and_registered_values():
    assert scrub("bad entry 'api_key:sk-live-123456'") == "bad entry 'api_key:***'"
    assert scrub('{"hf_token": "hf_abcdefgh"}') == '{"hf_token": "***"}'
    assert scrub("GET /x?token=abcdef123&n=2") == "GET /x?token=***&n=2"
    assert "abcdefghijkl" not in scrub("Authorization: Bearer abcdefghijkl")
    assert scrub("sent Bearer abcdefghijkl") == f"sent Bearer {REDACTED}"
    assert scrub("max_tokens=8 and num_tokens: 9") == "max_tokens=8 and num_tokens: 9"
    register_secret("my-registered-value-42")
    assert "my-registered-value-42" not in scrub("the value my-registered-value-42 leaked")
    assert redact({"note": "uses my-registered-value-42"}) == {"note": f"uses {REDACTED}"}


def test_secret_env_values_are_scrubbed(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_envsecretvalue")
    assert scrub("token hf_envsecretvalue in a message") == "token *** in a message"


def test_secrets_inside_urls_are_scrubbed():
    assert (
        scrub("at http://127.0.0.1:9/v1?api_key=SEKRITQP1 now") == "at http://127.0.0.1:9/v1?api_key=*** now"
    )
    assert scrub("http://user:SEKRITPASS@127.0.0.1:9/v1") == "http://user:***@127.0.0.1:9/v1"
    assert scrub("https://host:8080/path?page=2") == "https://host:8080/path?page=2"  # nothing secret
    assert scrub("git clone https://ghp_SEKRIT123@github.com/o/r") == "git clone https://***@github.com/o/r"
    assert scrub("see https://host/a@b and mail a@b.c") == "see https://host/a@b and mail a@b.c"
    signed = scrub("GET https://acct.blob.core.windows.net/c/f?sv=2024&se=2026&sig=SEKRITSIG%3D&sp=r")
    assert "SEKRITSIG" not in signed
    assert "sv=2024" in signed
    stored = redact({"base_url": "http://u:SEKRITPASS2@h/v1?token=abcdef99"})
    assert "SEKRIT" not in stored["base_url"]
    assert "abcdef99" not in stored["base_url"]


@pytest.mark.parametrize(
    "prose",
    [
        "needs a Google service-account key: set service_account_file in its config",
        "download a new key: create a JSON key for a service account",
        "check the key (--llm-args api_key= or OPENAI_API_KEY)",
        "tags key 'bad$key': MLflow takes letters, digits",
        "the token: expired, sign in again",
    ],
)
def test_prose_after_a_secret_word_is_not_taken_for_its_value(prose):
    assert scrub(prose) == prose


def test_assignments_spelt_as_configs_still_lose_their_values():
    assert scrub("api_key: sk-live-99999") == "api_key: ***"
    assert scrub("HF_TOKEN: hf_xxxxxxxx") == "HF_TOKEN: ***"
    assert scrub("{'password': 'abc123456'}") == "{'password': '***'}"
    assert scrub("token:abcdefgh") == "token:***"
