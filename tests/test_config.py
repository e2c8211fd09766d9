"""Config layering, .env loading and redaction."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import USER_MODELS


def test_dotenv_in_cwd_is_loaded_and_secrets_stay_out_of_the_bundle(cli, letters_task, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    secret = "sk-test-abcdef0123456789"
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={secret}\n")
    result = cli(
        "--models",
        USER_MODELS,
        "--llm-name",
        "HashLLM",
        "--llm-args",
        f"bias={secret}",
        "--task-name",
        letters_task,
        "--output-dir",
        tmp_path / "o",
        "-v",
    )
    assert result.code == 0, result.err
    import os

    assert os.environ["OPENAI_API_KEY"] == secret
    (bundle,) = [p for p in (tmp_path / "o").iterdir() if p.is_dir()]
    for path in bundle.iterdir():
        assert secret not in path.read_text(), path.name
    assert secret not in result.out + result.err


def test_secret_named_llm_args_are_redacted(cli, tmp_path, monkeypatch):
    from eval_framework.config import EvalConfig

    cfg = EvalConfig(
        llm_name="x", task_name="t", llm_args={"api_key": "abc", "nested": {"hf_token": "t"}, "n": 1}
    )
    assert cfg.redacted()["llm_args"] == {"api_key": "***", "nested": {"hf_token": "***"}, "n": 1}


def test_env_file_flag(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("EF_SOME_VAR", raising=False)
    env = tmp_path / "custom.env"
    env.write_text("EF_SOME_VAR=hello\n")
    assert cli("--env-file", env, "tasks").code == 0
    import os

    assert os.environ.pop("EF_SOME_VAR") == "hello"
    missing = cli("--env-file", tmp_path / "nope.env", "tasks")
    assert missing.code == 2 and "does not exist" in missing.err


def test_a_copy_of_env_example_leaves_blank_variables_unset(cli, tmp_path, monkeypatch):
    from eval_framework.config import ENV_VARS

    for name in ENV_VARS:  # start unset; restored afterwards whatever load_env sets
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    env = tmp_path / ".env"
    env.write_text((Path(__file__).parents[1] / ".env.example").read_text())
    assert cli("--env-file", env, "tasks").code == 0
    import os

    assert "WANDB_MODE" not in os.environ and "WANDB_INIT_TIMEOUT" not in os.environ  # blank: unset
    assert os.environ["WANDB_CACHE_SKIP"] == "true"  # values given are loaded
    result = cli("--env-file", env, "--llm-name", "embedded", "--llm-args", "version=v0", "--task-name",
                 "tiny-letters", "--num-samples", "4", "--output-dir", tmp_path / "out",
                 "--wandb-project", "evals", "--wandb-mode", "offline")  # fmt: skip
    assert result.code == 0, result.err


def test_config_file_layers_under_flags(cli, letters_task, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"models: {USER_MODELS}\nllm-name: HashLLM\ntask_name: {letters_task}\nnum_fewshot: 0\n"
        f"output_dir: {tmp_path / 'o'}\n"
    )
    assert cli("--config", cfg, "--num-fewshot", "1").code == 0
    (bundle,) = [p for p in (tmp_path / "o").iterdir() if p.is_dir()]
    assert json.loads((bundle / "metadata.json").read_text())["task"]["num_fewshot"] == 1


def test_invalid_value_names_the_flag(cli, letters_task):
    result = cli("--llm-name", "x", "--task-name", letters_task, "--num-fewshot", "-1")
    assert result.code == 2 and "--num-fewshot" in result.err


def test_a_config_key_written_twice_or_nested_too_deeply_is_one_clear_error(cli, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("llm_name: embedded\ntask_name: tiny-letters\nllm_name: hf\n")
    result = cli("--config", config)
    assert result.code == 2 and "run.yaml:3:1: key 'llm_name' is written twice" in result.err, result.err
    config.write_text("[" * 100_000)
    result = cli("--config", config)
    assert result.code == 2 and "is not valid YAML (nested too deeply to read)" in result.err, result.err


def test_an_empty_model_name_is_a_usage_error(cli):
    result = cli("--llm-name", " ", "--task-name", "tiny-letters")
    assert result.code == 2 and "invalid --llm-name: must not be empty" in result.err, result.err
