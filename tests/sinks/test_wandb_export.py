"""The wandb export destination, through the real SDK (offline), read back from the run's log."""

from __future__ import annotations

import json

import pytest

from eval_framework import export_results
from eval_framework.errors import ConfigError
from tests.wandb_log_reader import read_run, run_files


def test_an_exporter_config_shapes_the_run(bundle):
    config = {
        "project": "evals", "name": "baseline run", "description": "Baseline evaluation",
        "tags": ["baseline"], "job_type": "evaluation", "log_metrics": ["acc_norm"],
        "extra_metadata": {"hardware": "H100"}, "log_artifacts": False,
    }  # fmt: skip
    summary = export_results(bundle, dest="wandb", config=config)
    (done,) = summary.exported
    assert done.status == "created"
    (path,) = run_files(bundle / "wandb")
    assert done.location == f"wandb sync {path.parent}"  # offline: how to send it
    log = read_run(path)
    assert log.run.display_name == "baseline run"
    assert log.run.notes == "Baseline evaluation"
    assert log.run.job_type == "evaluation"
    assert "baseline" in log.run.tags
    assert log.config["hardware"] == "H100"
    assert log.config["task_name"] == "tiny-letters"  # the evaluation's own keys are all there
    assert "tiny-letters/acc_norm" in log.summary
    assert "tiny-letters/acc_norm/stderr" in log.summary
    assert "tiny-letters/acc" not in log.summary  # log_metrics: acc_norm only
    assert not [a for a in log.artifacts if a.type == "eval-results"]  # log_artifacts: false


def test_exporting_the_same_log_again_adds_no_second_run(bundle):
    config = {"project": "evals"}
    assert export_results(bundle, dest="wandb", config=config).exported[0].status == "created"
    again = export_results(bundle, dest="wandb", config=config, force=True)
    assert again.exported[0].status == "unchanged"  # offline and not synced yet: never a second copy
    assert len(run_files(bundle / "wandb")) == 1
    other = export_results(bundle, dest="wandb", config={"project": "evals", "tags": ["new"]})
    assert other.exported[0].status == "updated"  # different records for the same run


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"project": "evals", "log_mode": "all_tasks"}, "wandb export: invalid config"),
        ({"projekt": "evals"}, "unknown config key 'projekt' (did you mean project?)"),
        ({"project": "a/b"}, "wandb export: invalid config"),
    ],
)
def test_a_config_the_destination_cannot_honour_is_refused_first(bundle, config, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        export_results(bundle, dest="wandb", config=config)
    assert not run_files(bundle / "wandb")


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"project": "p", "mode": "disabled"}, 'disabled ("mode": "disabled" in --config)'),
        ({"project": "p"}, "disabled (WANDB_MODE=disabled (environment or .env))"),
    ],
)
def test_a_disabled_wandb_is_refused_before_anything_is_said_exported(bundle, cli, monkeypatch, config, says):
    if "mode" not in config:
        monkeypatch.setenv("WANDB_MODE", "disabled")
    result = cli("export", bundle, "--dest", "wandb", "--config", json.dumps(config))
    assert result.code == 2
    assert f"wandb export: W&B is {says}, so nothing would be exported" in result.err
    assert "online" in result.err.split("exported;")[1]
    assert "offline" in result.err.split("exported;")[1]
    assert "or leave out --dest wandb" in result.err
    assert "created" not in result.out + result.err
    assert not (bundle / "exports.jsonl").exists()  # the ledger records nothing
    assert not run_files(bundle / "wandb")
