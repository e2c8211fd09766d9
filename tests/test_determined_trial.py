"""--context determined: a trial's hyperparameters run through Determined's own Core API context
(its off-cluster stand-in, as core.init() gives it), with the experiment files in configs/."""

from __future__ import annotations

import json
import logging
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.tasks.test_builtin import _arc_row, _write

CONFIGS = Path(__file__).parents[1] / "configs"

#: The seed's model class, made the shipped tiny checkpoint (the seed's models file is the user's).
SEED_MODELS = """
from eval_framework.models.embedded import EmbeddedTinyLLM


class Llama31_8B_Instruct_HF(EmbeddedTinyLLM):
    pass
"""


@pytest.fixture
def arc_data(tmp_path) -> Path:
    """ARC in the dataset's own schema (a local copy: nothing is downloaded)."""
    data = tmp_path / "arc"
    for config in ("ARC-Easy", "ARC-Challenge"):
        _write(data / config / "test.jsonl", [_arc_row(i, "BD"[i % 2]) for i in range(6)])
        _write(data / config / "train.jsonl", [_arc_row(10 + i) for i in range(5)])
    return data


@pytest.fixture
def trial_dir(tmp_path, monkeypatch) -> Path:
    """The experiment's context directory, as Determined uploads it: the working directory."""
    work = tmp_path / "context"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    return work


def test_the_seed_example_runs_as_a_local_trial(cli, trial_dir, arc_data, caplog):
    shutil.copy(CONFIGS / "seed_example.yaml", trial_dir)
    (trial_dir / "my_models.py").write_text(SEED_MODELS)
    caplog.set_level(logging.INFO, logger="determined")
    result = cli("--context", "determined", "--hparams", "seed_example.yaml", "--task-data-dir", arc_data,
                 "--num-samples", "4", "--output-dir", "out")  # fmt: skip
    assert result.code == 0, result.err
    (bundle,) = [p for p in (trial_dir / "out").iterdir() if p.is_dir() and not p.name.startswith(".")]
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["task"]["name"] == "ARC"
    assert meta["task"]["num_fewshot"] == 3  # the hyperparameter, as written
    assert meta["config"]["context"] == "determined"
    assert meta["environment"]["cluster"] == {"determined": "local", "experiment_name": "my_experiment"}
    # num_samples: 100 is the hyperparameter; set, it wins over --num-samples 4 (12 samples exist)
    assert meta["task"]["num_samples"] == 12
    # the metrics went to Determined's Core API (its local stand-in logs what it is given)
    reported = [r.getMessage() for r in caplog.records if "report_validation_metrics" in r.getMessage()]
    assert len(reported) == 1
    assert "'ARC/acc'" in reported[0]


def test_a_set_hyperparameter_wins_over_flags_false_and_zero_included(cli, trial_dir):
    (trial_dir / "trial.yaml").write_text(
        textwrap.dedent("""\
        hyperparameters:
          llm_name: embedded
          llm_args: {version: v0}
          task_args:
            - {task_name: tiny-letters, num_fewshot: 0, num_samples: 5}
            - {task_name: tiny-letters-gen, num_samples: 3}
          wandb_upload_results: false
    """)
    )
    result = cli("--context", "determined", "--hparams", "trial.yaml", "--num-fewshot", "2",
                 "--task-name", "ARC", "--output-dir", "out")  # fmt: skip
    assert result.code == 0, result.err
    metas = {
        m["task"]["name"]: m
        for m in (json.loads(p.read_text()) for p in (trial_dir / "out").glob("*/metadata.json"))
    }
    assert sorted(metas) == ["tiny-letters", "tiny-letters-gen"]  # task_args replaced --task-name
    assert metas["tiny-letters"]["task"]["num_fewshot"] == 0  # set to 0: beats --num-fewshot 2
    assert metas["tiny-letters-gen"]["task"]["num_fewshot"] == 2  # not set: the flag applies


@pytest.mark.parametrize(
    ("hparams", "said"),
    [
        ("task_args: [{task_name: tiny-letters}, {task_name: tiny-letters, num_fewshot: -1}]",
         "task_args[1].num_fewshot"),
        ("task_args: {task_name: tiny-letters}\nllm_nmae: embedded", "llm_nmae"),
        ("task_args: {task_name: tiny-letters, num_samples: {type: categorical, vals: [5, 10]}}",
         "task_args.num_samples is a search (categorical over 2 values)"),
        ("llm_args: {api_key: {type: categorical, vals: [sk-TOPSECRET1, sk-OTHER12]}}\n"
         "task_args: {task_name: tiny-letters}", "llm_args.api_key is a search (categorical over 2 values)"),
        ("task_args: {task_name: tiny-letters, num_samples: {type: const}}", "type: const without a val"),
        ("task_args: {task_name: tiny-letters}\nllm_args: {version: v1, type: foo}",
         "no Determined hyperparameter type"),
    ],
)  # fmt: skip
def test_a_wrong_hyperparameter_is_refused_before_anything_runs(cli, trial_dir, hparams, said):
    (trial_dir / "trial.yaml").write_text("llm_name: embedded\n" + hparams + "\n")
    result = cli("--context", "determined", "--hparams", "trial.yaml", "--output-dir", "out")
    assert result.code == 2, result.err
    assert said in result.err
    assert "TOPSECRET" not in result.err
    assert not (trial_dir / "out").exists()


def test_outside_a_trial_it_says_how_to_run_one_here(cli, trial_dir):
    result = cli("--context", "determined", "--output-dir", "out")
    assert result.code == 2
    assert "this process is not a Determined trial" in result.err
    assert "eval_framework --context determined --hparams FILE" in result.err
    assert not (trial_dir / "out").exists()
    alone = cli("--hparams", "trial.yaml")
    assert alone.code == 2
    assert "add --context determined" in alone.err


def test_every_experiment_file_runs_its_first_trial_locally_up_to_the_model(cli, trial_dir):
    """Each file's hyperparameters, one trial's worth, pass every check (the model is not loaded:
    --show-config stops before)."""
    for path in sorted(CONFIGS.glob("*.yaml")):
        result = cli("--context", "determined", "--hparams", path, "--show-config")
        if "is a search" in result.err:  # a grid: one local run is one trial, said by name
            assert result.code == 2
            continue
        assert result.code == 0, (path.name, result.err)
        assert 'context: "determined"' in result.out


def test_the_trial_is_recorded_in_its_w_and_b_run(cli, trial_dir, monkeypatch, tmp_path):
    from tests.wandb_log_reader import read_run, run_files

    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    (trial_dir / "trial.yaml").write_text(
        textwrap.dedent("""\
        llm_name: embedded
        llm_args: {version: v0}
        experiment_name: nightly-letters
        description: the nightly check
        wandb_project: evals
        task_args: {task_name: tiny-letters, num_samples: 4}
    """)
    )
    result = cli("--context", "determined", "--hparams", "trial.yaml", "--output-dir", "out")
    assert result.code == 0, result.err
    (bundle,) = [p for p in (trial_dir / "out").iterdir() if p.is_dir() and not p.name.startswith(".")]
    (log,) = [read_run(p) for p in run_files(bundle / "wandb")]
    assert log.config["determined"] == "local"
    assert log.config["determined_experiment_name"] == "nightly-letters"
    assert log.run.notes == "the nightly check"


def test_null_model_arguments_leave_the_flags_and_the_context_is_any_case(cli, trial_dir):
    (trial_dir / "trial.yaml").write_text(
        "llm_name: embedded\nllm_args: {version: null}\n"
        "task_args: {task_name: tiny-letters, num_samples: 3}\n"
    )
    result = cli("--context", "Determined", "--hparams", "trial.yaml", "--llm-args", "version=v1",
                 "--output-dir", "out")  # fmt: skip
    assert result.code == 0, result.err
    assert "Determined validation metrics (step 1): tiny-letters/acc=" in result.err  # a local run shows them
    (meta,) = [json.loads(p.read_text()) for p in (trial_dir / "out").glob("*/metadata.json")]
    assert meta["config"]["llm_args"]["version"] == "v1"


def test_an_experiment_of_several_slots_runs_as_one_process_holding_them(cli, trial_dir):
    (trial_dir / "exp.yaml").write_text(
        "entrypoint: eval_framework --context determined\nresources: {slots_per_trial: 2}\n"
        "hyperparameters: {llm_name: embedded, task_args: {task_name: tiny-letters}}\n"
    )
    result = cli("--context", "determined", "--hparams", "exp.yaml")
    assert result.code == 0, result.err
    assert "Determined validation metrics (step 1)" in result.err
    (trial_dir / "bare.yaml").write_text("entrypoint: eval_framework --context determined\nname: x\n")
    assert "without a hyperparameters block" in cli("--context", "determined", "--hparams", "bare.yaml").err
