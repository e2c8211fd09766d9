"""Every sink is isolated, and a cheap preflight runs before the model loads."""

from __future__ import annotations

import sys
import time

from eval_framework.results import Bundle
from eval_framework.sinks import hf_hub
from tests.sinks.conftest import EVAL
from tests.wandb_log_reader import read_run, run_files

HF = ("--hf-upload-repo", "my-org/evals")
WANDB_OFFLINE = ("--wandb-project", "evals", "--wandb-mode", "offline")


def _one_line(result) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err, result.err
    return lines[0]


def test_a_missing_token_costs_seconds_not_an_evaluation(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    started = time.monotonic()
    result = cli(*EVAL, "--output-dir", tmp_path / "out", *HF, *WANDB_OFFLINE)
    line = _one_line(result)
    assert result.code == 2
    assert "set HF_TOKEN" in line
    assert not (tmp_path / "out").exists()  # refused before anything was created or loaded
    assert time.monotonic() - started < 5


def test_a_token_the_hub_rejects_is_refused_before_the_evaluation(cli, tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    result = cli(*EVAL, "--output-dir", tmp_path / "out", *HF)
    line = _one_line(result)
    assert result.code == 2
    assert "rejected the token (HTTP 401)" in line
    assert "check HF_TOKEN" in line
    assert not (tmp_path / "out").exists()
    assert "x" * 34 not in result.err


def test_an_unreachable_hub_does_not_stop_wandb_and_names_the_command(cli, tmp_path, hub):
    hub.down = True  # unreachable from the preflight on: the evaluation still runs
    result = cli(*EVAL, "--output-dir", tmp_path / "out", *HF, *WANDB_OFFLINE)
    line = _one_line(result)
    assert result.code == 7
    assert "cannot reach the Hugging Face Hub at" in line
    assert "connection refused" in line
    (bundle,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert Bundle(bundle).is_complete()
    (run,) = [read_run(p) for p in run_files(bundle / "wandb")]
    assert run.summary["tiny-letters/acc/n"] == 24  # W&B was logged regardless
    assert f"eval_framework upload {bundle}" in line
    assert "--hf-upload-repo my-org/evals" in line
    hub.down = False
    command = line.split("finish the export with: ")[1].split()
    again = cli(*command[1:], "--wandb-mode", "offline")
    assert again.code == 0, again.err
    assert hub.repos["my-org/evals"].commits


def test_a_sink_failing_with_a_bug_does_not_stop_the_others(cli, tmp_path, hub, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("metrics")

    monkeypatch.setattr(hf_hub, "upload_bundle", broken)
    monkeypatch.setattr("eval_framework.sinks.publish.upload_bundle", broken)
    result = cli(*EVAL, "--output-dir", tmp_path / "out", *HF, *WANDB_OFFLINE)
    line = _one_line(result)
    assert result.code == 7
    assert "Hugging Face upload failed: KeyError" in line
    (bundle,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert [read_run(p) for p in run_files(bundle / "wandb")]  # W&B still logged


def test_a_missing_wandb_extra_is_named_before_anything_starts(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what Python does for a module that is not installed
    result = cli(*EVAL, "--output-dir", tmp_path / "out", "--wandb-project", "evals")
    line = _one_line(result)
    assert result.code == 2
    assert "pip install 'eval_framework[wandb]'" in line
    assert not (tmp_path / "out").exists()


def test_upload_takes_the_evaluations_own_config_file(cli, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("llm_name: embedded\ntask_name: tiny-letters\nnum_fewshot: 2\nwandb_project: evals\n"
                      "wandb_mode: offline\nwandb_tags:\n")  # fmt: skip
    assert cli(*EVAL, "--output-dir", tmp_path / "out").code == 0
    result = cli("upload", tmp_path / "out", "--config", config)
    assert result.code == 0, result.err


def test_upload_keeps_positional_paths_after_a_tags_flag(cli, tmp_path):
    assert cli(*EVAL, "--output-dir", tmp_path / "out").code == 0
    result = cli("upload", "--wandb-tags", "nightly", tmp_path / "out", *WANDB_OFFLINE, "--dry-run")
    assert result.code == 0, result.err
    assert '"nightly"' in result.out


def test_a_hub_that_never_answers_costs_seconds_not_the_evaluation(cli, tmp_path, hub, monkeypatch):
    """The Hub client has no overall time limit: a server that accepts and never answers would hold
    the command forever."""
    import threading

    hub.stall = threading.Event()
    monkeypatch.setattr(hf_hub, "PREFLIGHT_TIMEOUT_S", 0.5)
    monkeypatch.setattr(hf_hub, "UPLOAD_TIMEOUT_S", 0.5)
    started = time.monotonic()
    result = cli(*EVAL, "--output-dir", tmp_path / "out", *HF, *WANDB_OFFLINE)
    hub.stall.set()
    line = _one_line(result)
    assert result.code == 7
    assert "did not answer in time" in line
    assert "finish the export with" in line
    assert time.monotonic() - started < 20
    (bundle,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert Bundle(bundle).is_complete()
    assert list((bundle / "wandb").glob("offline-run-*"))


def test_each_sinks_failure_reaches_the_command_line_from_its_fields(cli, tmp_path, hub):
    import pytest

    from eval_framework.errors import ExportError
    from eval_framework.sinks.hf_hub import HfUploadOptions
    from eval_framework.sinks.publish import PublishOptions, publish

    out = tmp_path / "out"
    assert cli(*EVAL, "--output-dir", out).code == 0
    assert cli(*EVAL[:-1], "12", "--output-dir", out).code == 0
    first, second = sorted(p for p in out.iterdir() if p.is_dir())
    hub.down = True
    with pytest.raises(ExportError) as info:
        publish(first, PublishOptions(hf=HfUploadOptions("my-org/evals")))
    (failure,) = info.value.failures
    assert (failure.sink, failure.what) == ("Hugging Face", f"uploading {first.name} to my-org/evals")
    assert "cannot reach the Hugging Face Hub" in failure.why
    assert info.value.bundle == first
    assert info.value.command.startswith(f"eval_framework upload {first} ")

    line = _one_line(cli("upload", out, *HF))
    problems = [f"uploading {b.name} to my-org/evals failed: {failure.why}" for b in (first, second)]
    assert line == (
        f"error: {'; '.join(problems)}. The evaluations themselves are complete; finish the export with: "
        f"eval_framework upload {first} {second} --hf-upload-repo my-org/evals"
    )
