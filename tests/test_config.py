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
    assert missing.code == 2
    assert "does not exist" in missing.err


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

    assert "WANDB_MODE" not in os.environ
    assert "WANDB_INIT_TIMEOUT" not in os.environ
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
    assert result.code == 2
    assert "--num-fewshot" in result.err


def test_a_config_key_written_twice_or_nested_too_deeply_is_one_clear_error(cli, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("llm_name: embedded\ntask_name: tiny-letters\nllm_name: hf\n")
    result = cli("--config", config)
    assert result.code == 2, result.err
    assert "run.yaml:3:1: key 'llm_name' is written twice" in result.err, result.err
    config.write_text("[" * 100_000)
    result = cli("--config", config)
    assert result.code == 2, result.err
    assert "is not valid YAML (nested too deeply to read)" in result.err, result.err


def test_an_empty_model_name_is_a_usage_error(cli):
    result = cli("--llm-name", " ", "--task-name", "tiny-letters")
    assert result.code == 2, result.err
    assert "invalid --llm-name: must not be empty" in result.err, result.err


def test_the_config_module_knows_nothing_of_the_sinks():
    import subprocess
    import sys

    code = (
        "import sys, eval_framework.config\n"
        "print(sorted(m for m in sys.modules if m.startswith('eval_framework.sinks')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_where_results_go_is_not_part_of_the_evaluation(cli, tmp_path):
    from eval_framework.config import EvalConfig
    from eval_framework.sinks.settings import SinkSettings

    assert not [f for f in EvalConfig.model_fields if f.startswith(("wandb_", "hf_"))]
    assert set(SinkSettings.model_fields) >= {
        "wandb_project",
        "wandb_tags",
        "hf_upload_repo",
        "hf_upload_dir",
    }
    config = tmp_path / "run.yaml"
    config.write_text(
        "wandb_project: evals\nwandb-mode: disabled\nwandb_tags: a,b\nhf_upload_dir: x\nseed: 1234\n"
    )
    result = cli("--llm-name", "embedded", "--llm-args", "version=v2", "--task-name", "tiny-letters",
                 "--num-fewshot", "0", "--num-samples", "8", "--output-dir", tmp_path / "out",
                 "--config", config, "--wandb-group", "g")  # fmt: skip
    assert result.code == 0, result.err
    (bundle,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    # the same key as before the sink options left EvalConfig, and as without any of them
    assert bundle.name == "tiny-letters-v2__tiny-letters__0shot__8__78cb463843eb"
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert metadata["natural_key"].startswith("78cb463843eb")
    assert set(metadata["config"]) == set(EvalConfig.model_fields)  # no wandb_*, no hf_*


def test_a_misspelt_sink_key_in_a_config_file_is_named_with_what_it_may_mean(cli, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("llm_name: embedded\ntask_name: tiny-letters\nwandb_projct: evals\n")
    result = cli("--config", config)
    assert result.code == 2
    assert "unknown option 'wandb_projct' in the --config file (did you mean wandb_project" in result.err
    config.write_text("llm_name: embedded\ntask_name: tiny-letters\nwnadb_project: evals\n")
    result = cli("--config", config)
    assert result.code == 2
    assert "'wnadb_project' in the --config file (did you mean wandb_project" in result.err
    config.write_text("llm_name: embedded\ntask_name: tiny-letters\nwandb_table_rows: many\n")
    result = cli("--config", config)
    assert result.code == 2, result.err
    assert "invalid 'wandb_table_rows' in the --config file (--wandb-table-rows): " in result.err, result.err
    assert not (tmp_path / "outputs").exists()


def test_a_bad_flag_value_names_the_commands_help(cli, tmp_path):
    upload = cli("upload", tmp_path, "--wandb-project", "a/b")
    assert upload.code == 2
    assert "invalid --wandb-project" in upload.err
    assert "see eval_framework upload --help" in upload.err


def test_a_missing_model_says_how_to_name_one(cli):
    result = cli("--task-name", "tiny-letters")
    assert result.code == 2
    assert "--llm-name is missing: pass it (or --checkpoint, for a registry checkpoint)" in result.err
