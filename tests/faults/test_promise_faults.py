"""Class 5: secrets in messages, and the small promises of the README and docs."""

from __future__ import annotations

import json

import pytest

from tests.faults.conftest import expect

SECRET = "sk-promise-0123456789abcdef"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--llm-args", f"api_key:{SECRET}"], "bad --llm-args entry 'api_key:***'"),
        (["--llm-args", f"api_key={SECRET}", "batch_size=abc"], "batch_size='abc'"),
        (["--llm-args", "api_key=[1, 2]"], "api_key='***'"),
        (["--llm-args", f"token={SECRET}"], "does not accept --llm-args token"),
    ],
)
def test_no_error_message_shows_a_secret(ws, args, says):
    result = ws.evaluate(*args)
    expect(result, 2, says)
    assert SECRET not in result.err + result.out
    assert "[1, 2]" not in result.err
    ws.keeper_intact()


def test_debug_set_in_dotenv_shows_the_traceback_then_the_line(ws):
    (ws.root / ".env").write_text(f"EVAL_FRAMEWORK_DEBUG=1\nOPENAI_API_KEY={SECRET}\n")
    result = ws.evaluate("--llm-args", "batch_size=abc")
    assert result.code == 2
    assert "Traceback (most recent call last)" in result.err
    assert result.lines[-1].startswith("error: invalid --llm-args batch_size='abc'")
    assert SECRET not in result.err
    ws.keeper_intact()


def test_upload_keeps_the_paths_given_after_tags(ws):
    result = ws.run("upload", "--wandb-tags", "nightly", ws.out, "--wandb-project", "evals", "--dry-run")
    expect(result, 0, lines=0)
    (plan,) = json.loads(result.out)
    assert "nightly" in plan["wandb"]["tags"]
    several = ws.run("upload", "--wandb-tags", "nightly,sweep", "--wandb-tags", "v2", ws.out,
                     "--wandb-project", "evals", "--dry-run")  # fmt: skip
    assert {"nightly", "sweep", "v2"} <= set(json.loads(several.out)[0]["wandb"]["tags"])
    ws.keeper_intact()


def test_upload_takes_the_evaluations_own_config_file(ws):
    (ws.root / "run.yaml").write_text(
        "models: models.py\nllm_name: HashLLM\ntask_name: letters.yaml\nnum_fewshot: 0\n"
        "wandb_project: evals\nwandb_mode: offline\n"
    )
    result = ws.run("upload", ws.out, "--config", "run.yaml")
    expect(result, 0, "logged offline; sync it with")
    assert list((ws.keeper / "wandb").glob("offline-run-*"))
    # Logging adds to the bundle (the W&B run directory, the ledger); its results are untouched.
    for name in ("metadata.json", "results.json", "samples.jsonl"):
        assert (ws.keeper / name).read_bytes() == ws.snapshot[name]


def test_the_tasks_and_help_commands_work_offline(ws):
    expect(ws.run("tasks"), 0, lines=0)
    expect(ws.run("--help"), 0, lines=0)
    expect(ws.run("upload", "--help"), 0, lines=0)
    ws.keeper_intact()


def test_secrets_inside_urls_never_show(ws):
    from tests.fakes.wandb_http import refused_url

    host = refused_url().removeprefix("http://")
    result = ws.run("--llm-name", "openai", "--llm-args", "model=x",
                    f"base_url=http://user:SEKRITPASS1@{host}/v1?api_key=SEKRITQP2",
                    "--task-name", "letters.yaml", "--output-dir", ws.out)  # fmt: skip
    expect(result, 3, "cannot reach the server at", "(connection refused)")
    assert "SEKRIT" not in result.err + result.out
    for path in ws.out.rglob("*"):
        if path.is_file():
            assert "SEKRIT" not in path.read_text(errors="replace"), path
    ws.keeper_intact()
