"""A Determined trial's hyperparameters as eval_framework settings, and the experiment files in
configs/: every combination a grid would give is a valid set of hyperparameters."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from eval_framework.config import EvalConfig
from eval_framework.determined_hparams import (
    DeterminedHparams,
    evaluation_inputs,
    layers,
    load_hparams,
    merged_auto_export,
    merged_over,
)
from eval_framework.errors import ConfigError
from eval_framework.exporting import AutoExport
from eval_framework.invocation_config import build_configs
from eval_framework.sinks.settings import SinkSettings, build_sink_settings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALSO_KNOWN = [*SinkSettings.model_fields, "auto_export"]

#: Every hyperparameter eval_framework reads, set.
EVERY_KEY: dict[str, Any] = {
    "llm_name": "hf",
    "llm_args": {"device": "cpu", "dtype": "float32"},
    "models": "my_models.py",
    "checkpoint": "llama-sft:v3",
    "output_dir": "runs",
    "wandb_project": "llm-benchmarks",
    "wandb_entity": "my-team",
    "wandb_group": "sweep-1",
    "wandb_run_id": "run-01",
    "wandb_upload_results": False,
    "hf_upload_repo": "my-org/eval-results",
    "hf_upload_dir": "nightly",
    "description": "v3 on ARC and MMLU",
    "experiment_name": "sweep",
    "auto_export": {"destinations": ["local"], "configs": {"local": {"format": "csv"}}},
    "task_args": [
        {"task_name": "ARC", "num_fewshot": 0, "num_samples": 10, "max_tokens": 5, "batch_size": 4},
        {"task_name": "MMLU", "task_subjects": "anatomy, astronomy", "batch_size": 4},
    ],
}


def cli_flags(**given: Any) -> dict[str, Any]:
    """The evaluation flags as the root command builds them (None: not given)."""
    names = ["llm_name", "task_name", "models", "llm_args", "num_fewshot", "num_samples", "subjects"]
    names += ["seed", "batch_size", "max_tokens", "output_dir", "task_data_dir", "overwrite", "context"]
    return {name: given.get(name) for name in names}


def sink_flags(**given: Any) -> dict[str, Any]:
    return {name: given.get(name) for name in SinkSettings.model_fields}


def configs_from(
    hparams: Mapping[str, Any], flags: dict[str, Any], file_values: dict[str, Any] | None = None
) -> list[EvalConfig]:
    """What the command would evaluate with these hyperparameters, flags and --config values."""
    files, merged = evaluation_inputs(file_values or {}, flags, layers(load_hparams(hparams)).evaluation)
    return build_configs(files, merged, also_known=ALSO_KNOWN)


def one_task(**settings: Any) -> dict[str, Any]:
    return {"task_args": {"task_name": "A", **settings}}


def refusal(hparams: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_hparams(hparams)
    assert caught.value.exit_code == 2
    return str(caught.value)


# The model ---------------------------------------------------------------------------------------


def test_every_key_is_read_into_its_layer():
    hp = load_hparams(EVERY_KEY)
    assert set(EVERY_KEY) == set(DeterminedHparams.model_fields)
    got = layers(hp)
    assert got.evaluation == {
        "llm_name": "hf",
        "models": Path("my_models.py"),
        "output_dir": Path("runs"),
        "llm_args": {"device": "cpu", "dtype": "float32", "artifact_name": "llama-sft:v3"},
        "batch_size": 4,
        "tasks": [
            {"task_name": "ARC", "num_fewshot": 0, "num_samples": 10, "max_tokens": 5},
            {"task_name": "MMLU", "subjects": ["anatomy", "astronomy"]},
        ],
    }
    assert got.sinks == {
        "wandb_project": "llm-benchmarks", "wandb_entity": "my-team", "wandb_group": "sweep-1",
        "wandb_run_id": "run-01", "wandb_upload_results": False,
        "hf_upload_repo": "my-org/eval-results", "hf_upload_dir": "nightly",
    }  # fmt: skip
    assert got.auto_export == {"destinations": ["local"], "configs": {"local": {"format": "csv"}}}
    assert (got.description, got.experiment_name) == ("v3 on ARC and MMLU", "sweep")


def test_no_hyperparameters_set_nothing():
    got = layers(load_hparams({}))
    assert (got.evaluation, got.sinks, got.auto_export, got.description) == ({}, {}, None, None)
    # null is "not given", as in a --config file
    assert layers(load_hparams(dict.fromkeys(EVERY_KEY))).evaluation == {}


def test_one_task_as_a_mapping_or_a_list_of_one_is_the_same():
    one = load_hparams({"task_args": {"task_name": "ARC", "num_fewshot": 3}})
    listed = load_hparams({"task_args": [{"task_name": "ARC", "num_fewshot": 3}]})
    assert (
        layers(one).evaluation
        == layers(listed).evaluation
        == {"tasks": [{"task_name": "ARC", "num_fewshot": 3}]}
    )


@pytest.mark.parametrize(
    ("given", "subjects"),
    [
        (["anatomy", "astronomy"], ["anatomy", "astronomy"]),
        ("anatomy,astronomy", ["anatomy", "astronomy"]),
        (" anatomy , astronomy ", ["anatomy", "astronomy"]),
        (["anatomy, astronomy", "virology"], ["anatomy", "astronomy", "virology"]),
        ("anatomy", ["anatomy"]),
    ],
)
def test_task_subjects_as_a_list_or_a_comma_string(given, subjects):
    got = layers(load_hparams({"task_args": {"task_name": "MMLU", "task_subjects": given}}))
    assert got.evaluation["tasks"] == [{"task_name": "MMLU", "subjects": subjects}]


@pytest.mark.parametrize(
    ("hparams", "named", "meant"),
    [
        ({"llm_nme": "hf"}, "llm_nme", "llm_name"),
        ({"wandb_projet": "p"}, "wandb_projet", "wandb_project"),
        ({"task_args": {"task_name": "ARC", "num_fewshots": 3}}, "task_args.num_fewshots", "num_fewshot"),
        (
            {"task_args": [{"task_name": "A"}, {"task_name": "B", "subjects": "x"}]},
            "task_args[1].subjects",
            "task_subjects",
        ),
        ({"auto_export": {"destination": ["local"]}}, "auto_export.destination", "destinations"),
    ],
)
def test_an_unknown_key_is_named_with_the_key_meant_and_the_valid_ones(hparams, named, meant):
    message = refusal(hparams)
    assert f"unknown hyperparameter {named} (did you mean {meant}" in message
    assert meant in message.split(";", 1)[1]  # the keys it takes are listed


def test_a_tasks_key_written_at_the_top_level_is_pointed_to_where_it_belongs():
    message = refusal({"num_fewshots": 2})
    assert message.startswith("unknown hyperparameter num_fewshots (did you mean task_args.num_fewshot?)")


def test_an_unknown_key_lists_every_hyperparameter_read():
    message = refusal({"global_batch_size": 32})
    assert "unknown hyperparameter global_batch_size;" in message
    for key in EVERY_KEY:
        assert key in message


@pytest.mark.parametrize(
    ("hparams", "expected"),
    [
        ({"task_args": [{"task_name": "A"}, {"task_name": "B", "num_fewshot": -1}]},
         "hyperparameter task_args[1].num_fewshot: must be 0 or more, not -1"),
        ({"task_args": {"task_name": "A", "num_samples": 0}},
         "hyperparameter task_args.num_samples: must be 1 or more, not 0"),
        ({"task_args": [{"task_name": "A", "max_tokens": 0}]},
         "hyperparameter task_args[0].max_tokens: must be 1 or more"),
        ({"task_args": [{"task_name": "A", "batch_size": 0}]},
         "hyperparameter task_args[0].batch_size: must be 1 or more"),
        ({"task_args": [{"task_name": "A"}, {"num_fewshot": 3}]},
         "hyperparameter task_args[1].task_name is missing"),
        ({"task_args": {"task_name": "  "}}, "hyperparameter task_args.task_name: must not be empty"),
        ({"task_args": "ARC"}, "hyperparameter task_args: must be a mapping with task_name"),
        ({"task_args": ["ARC"]}, "hyperparameter task_args[0]: must be a mapping"),
        ({"task_args": []}, "hyperparameter task_args: must not be empty"),
        ({"task_args": {"task_name": "A", "task_subjects": ["x", 3]}},
         "hyperparameter task_args.task_subjects[1]: must be text, not 3"),
        ({"llm_name": 7}, "hyperparameter llm_name: must be text, not 7"),
        ({"llm_name": ""}, "hyperparameter llm_name: must not be empty"),
        ({"models": ""}, "hyperparameter models: must not be empty"),
        ({"output_dir": 3}, "hyperparameter output_dir: must be a path, not 3"),
        ({"checkpoint": "llama-sft:"}, "hyperparameter checkpoint: invalid checkpoint reference"),
        ({"wandb_project": "a/b"}, "hyperparameter wandb_project: 'a/b' is not a W&B project"),
        ({"wandb_run_id": "a b"}, "hyperparameter wandb_run_id: 'a b' is not a W&B run id"),
        ({"hf_upload_repo": "results"}, "hyperparameter hf_upload_repo: 'results' is not a repo id"),
        ({"auto_export": {"destinations": []}}, "hyperparameter auto_export.destinations: must not be empty"),
        ({"auto_export": {"destinations": ["local"], "configs": {"local": "csv"}}},
         "hyperparameter auto_export.configs.local: must be a mapping"),
        ({"llm_args": ["device=cpu"]}, "hyperparameter llm_args: must be a mapping"),
    ],
)  # fmt: skip
def test_a_bad_value_is_named_by_its_path(hparams, expected):
    message = refusal(hparams)
    assert message.startswith(expected), message
    assert "experiment file" in message  # what to do


@pytest.mark.parametrize(
    ("hparams", "expected"),
    [
        (one_task(num_fewshot=True), "num_fewshot: must be a whole number, not true"),
        (one_task(num_samples=10.0), "num_samples: must be a whole number, not 10.0"),
        (one_task(max_tokens="64"), "max_tokens: must be a whole number, not '64'"),
        (one_task(batch_size=False), "batch_size: must be a whole number, not false"),
        ({"wandb_upload_results": 0}, "wandb_upload_results: must be true or false, not 0"),
        ({"wandb_upload_results": "no"}, "wandb_upload_results: must be true or false, not 'no'"),
    ],
)  # fmt: skip
def test_numbers_and_switches_are_strict(hparams, expected):
    assert expected in refusal(hparams)


def test_a_value_under_llm_args_is_never_shown():
    secret = "sk-determined-0123456789abcdef"
    message = refusal({"llm_args": secret})
    assert secret not in message
    assert "must be a mapping (name: value), not text" in message


def test_tasks_of_one_trial_share_one_batch_size():
    same = {
        "task_args": [
            {"task_name": "A", "batch_size": 8},
            {"task_name": "B"},
            {"task_name": "C", "batch_size": 8},
        ]
    }
    assert layers(load_hparams(same)).evaluation["batch_size"] == 8
    differ = {
        "task_args": [
            {"task_name": "A"},
            {"task_name": "B", "batch_size": 8},
            {"task_name": "C", "batch_size": 16},
        ]
    }
    message = refusal(differ)
    assert message.startswith(
        "hyperparameter task_args[2].batch_size: 16 differs from task_args[1].batch_size (8)"
    )
    assert "separate trials" in message


def test_a_batch_size_may_be_auto():
    hparams = load_hparams({"task_args": [{"task_name": "A", "batch_size": "auto"}, {"task_name": "B"}]})
    assert layers(hparams).evaluation["batch_size"] == "auto"
    assert "batch_size: must be a whole number, not 'big'" in refusal(one_task(batch_size="big"))


def test_a_checkpoint_and_another_artifact_name_are_refused():
    message = refusal({"checkpoint": "llama-sft:v3", "llm_args": {"artifact_name": "llama-sft:v4"}})
    assert message.startswith("hyperparameter checkpoint: llm_args.artifact_name names another checkpoint")
    same = load_hparams({"checkpoint": "llama-sft:v3", "llm_args": {"artifact_name": "llama-sft:v3"}})
    assert layers(same).evaluation["llm_args"] == {"artifact_name": "llama-sft:v3"}


def test_the_hyperparameters_must_be_a_mapping():
    assert refusal(["llm_name"]).startswith("the trial's hyperparameters must be a mapping")


def test_an_unknown_key_is_reported_before_the_missing_one_it_explains():
    message = refusal({"task_args": {"name": "ARC"}})
    assert message.startswith("unknown hyperparameter task_args.name")
    assert "; also: hyperparameter task_args.task_name is missing" in message  # every problem said


def test_every_problem_is_said_once():
    message = refusal({"num_fewshots": 2, "task_args": [{"task_name": "A", "num_fewshot": -1}]})
    assert message.count("num_fewshots") == 1
    assert message.count("task_args[0].num_fewshot: must be 0 or more") == 1


# Precedence --------------------------------------------------------------------------------------


def test_a_set_hyperparameter_wins_over_flags_false_and_zero_included():
    flags = {"wandb_upload_results": True, "num_fewshot": 5, "wandb_project": "cli", "seed": 7}
    merged = merged_over(flags, {"wandb_upload_results": False, "num_fewshot": 0, "wandb_project": None})
    assert merged == {"wandb_upload_results": False, "num_fewshot": 0, "wandb_project": "cli", "seed": 7}
    assert flags["wandb_upload_results"] is True  # a pure function: the flags are left as they were


def test_llm_args_merge_key_by_key_the_hyperparameters_winning():
    merged = merged_over(
        {"llm_args": {"device": "cuda", "dtype": "bf16"}}, {"llm_args": {"dtype": "float32"}}
    )
    assert merged["llm_args"] == {"device": "cuda", "dtype": "float32"}


def test_wandb_upload_results_false_beats_the_flag_in_the_sink_settings():
    hp = layers(load_hparams({"wandb_upload_results": False, "wandb_group": "g"}))
    flags = sink_flags(wandb_project="cli-project", wandb_upload_results=True, wandb_group="cli-group")
    settings = build_sink_settings({}, merged_over(flags, hp.sinks))
    assert settings.wandb_upload_results is False
    assert settings.wandb_group == "g"
    assert settings.wandb_project == "cli-project"  # not a hyperparameter: the flag stands
    options = settings.publish_options()
    assert options.wandb is not None
    assert options.wandb.upload_results is False


def test_hyperparameters_not_given_leave_the_flags_and_the_file():
    flags = cli_flags(llm_name="hf", task_name=("ARC",), num_fewshot=5, batch_size=2, seed=9)
    (config,) = configs_from({"experiment_name": "x"}, flags, {"num_samples": 10, "output_dir": "file-out"})
    assert (config.task_name, config.num_fewshot, config.batch_size, config.seed) == ("ARC", 5, 2, 9)
    assert (config.num_samples, config.output_dir) == (10, Path("file-out"))
    settings = build_sink_settings(
        {"wandb_project": "file-project"}, merged_over(sink_flags(), layers(load_hparams({})).sinks)
    )
    assert settings.wandb_project == "file-project"


def test_num_fewshot_zero_beats_the_flag_and_the_flag_still_serves_other_tasks():
    hparams = {"task_args": [{"task_name": "ARC", "num_fewshot": 0}, {"task_name": "MMLU"}]}
    flags = cli_flags(llm_name="hf", num_fewshot=5, num_samples=20)
    arc, mmlu = configs_from(hparams, flags)
    assert (arc.task_name, arc.num_fewshot, arc.num_samples) == ("ARC", 0, 20)
    assert (mmlu.task_name, mmlu.num_fewshot, mmlu.num_samples) == ("MMLU", 5, 20)


def test_task_args_replace_the_command_lines_and_the_files_tasks():
    hparams = {"task_args": {"task_name": "GSM8K", "max_tokens": 64}}
    flags = cli_flags(llm_name="hf", task_name=("ARC", "MMLU"), max_tokens=16)
    (config,) = configs_from(hparams, flags, {"tasks": [{"task_name": "PIQA", "num_fewshot": 1}]})
    assert (config.task_name, config.max_tokens, config.num_fewshot) == ("GSM8K", 64, None)
    (config,) = configs_from(hparams, cli_flags(llm_name="hf"), {"task_name": "PIQA"})
    assert config.task_name == "GSM8K"


def test_the_batch_size_of_the_tasks_beats_the_flag():
    hparams = {"task_args": [{"task_name": "ARC", "batch_size": 16}, {"task_name": "MMLU"}]}
    configs = configs_from(hparams, cli_flags(llm_name="hf", batch_size=2))
    assert [c.batch_size for c in configs] == [16, 16]


def test_a_checkpoint_is_evaluated_as_with_the_checkpoint_flag():
    flags = cli_flags(task_name=("ARC",), llm_args={"device": "cuda"})
    (config,) = configs_from({"checkpoint": "llama-sft:v4"}, flags)
    assert config.llm_name == "hf"
    assert config.llm_args == {"device": "cuda", "artifact_name": "llama-sft:v4"}
    named = cli_flags(task_name=("ARC",), llm_name="MyModel")  # a model named on the command line stays
    (config,) = configs_from({"checkpoint": "llama-sft:v4"}, named)
    assert config.llm_name == "MyModel"
    (config,) = configs_from(
        {"checkpoint": "llama-sft:v4"}, cli_flags(task_name=("ARC",)), {"llm_name": "Mine"}
    )
    assert config.llm_name == "Mine"


def test_every_key_maps_into_the_evaluations_and_sinks():
    hp = layers(load_hparams(EVERY_KEY))
    files, flags = evaluation_inputs({}, cli_flags(), hp.evaluation)
    arc, mmlu = build_configs(files, flags, also_known=ALSO_KNOWN)
    assert arc.model_dump() == EvalConfig(
        llm_name="hf", llm_args={"device": "cpu", "dtype": "float32", "artifact_name": "llama-sft:v3"},
        models=Path("my_models.py"), task_name="ARC", num_fewshot=0, num_samples=10, max_tokens=5,
        batch_size=4, output_dir=Path("runs"),
    ).model_dump()  # fmt: skip
    assert (mmlu.task_name, mmlu.subjects, mmlu.num_fewshot, mmlu.batch_size) == (
        "MMLU",
        ("anatomy", "astronomy"),
        None,
        4,
    )
    settings = build_sink_settings({}, merged_over(sink_flags(), hp.sinks))
    assert settings == SinkSettings(
        wandb_project="llm-benchmarks", wandb_entity="my-team", wandb_group="sweep-1",
        wandb_run_id="run-01", wandb_upload_results=False, hf_upload_repo="my-org/eval-results",
        hf_upload_dir="nightly",
    )  # fmt: skip


def test_the_auto_export_block_is_layered_over_the_command_lines():
    lower = AutoExport(
        destinations=["local", "wandb"], configs={"local": {"format": "csv", "output_dir": "a"}}
    )
    block = layers(
        load_hparams({"auto_export": {"destinations": ["local"], "configs": {"local": {"output_dir": "b"}}}})
    )
    merged = merged_auto_export(lower, block.auto_export)
    assert merged == AutoExport(
        destinations=["local"], configs={"local": {"format": "csv", "output_dir": "b"}}
    )
    assert merged_auto_export(lower, None) is lower
    assert merged_auto_export(None, {"destinations": ["local"]}) == AutoExport(destinations=["local"])


# The experiment files ----------------------------------------------------------------------------


def grid_values(hparam: Any) -> list[Any]:
    """The values Determined's grid searcher gives a hyperparameter: a const one its val, a
    categorical one each of its vals, a mapping without ``type`` (nested) each combination of its
    keys' values, any other value (a list included) itself."""
    if not isinstance(hparam, Mapping):
        return [hparam]
    if "type" not in hparam:
        return combinations(hparam)
    kind = hparam["type"]
    if kind == "const":
        return [hparam["val"]]
    if kind == "categorical":
        assert hparam["vals"], "a categorical hyperparameter needs vals"
        return list(hparam["vals"])
    raise AssertionError(
        f"hyperparameter type {kind!r}: Determined takes const, categorical, int, double, log"
    )


def combinations(hparams: Mapping[str, Any]) -> list[dict[str, Any]]:
    names = list(hparams)
    axes = [grid_values(hparams[name]) for name in names]
    return [dict(zip(names, chosen, strict=True)) for chosen in itertools.product(*axes)]


EXPERIMENT_FILES = sorted(CONFIGS.glob("*.yaml"))


def test_the_experiment_files_are_there():
    assert {p.name for p in EXPERIMENT_FILES} >= {
        "single_task.yaml", "task_list.yaml", "grid_versions_by_task.yaml", "seed_example.yaml"
    }  # fmt: skip


@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=lambda p: p.name)
def test_every_trial_an_experiment_file_gives_is_valid(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative export folder is checked (never made) here
    experiment = yaml.safe_load(path.read_text())
    assert experiment["entrypoint"] == "eval_framework --context determined"
    assert experiment["resources"]["slots_per_trial"] >= 1
    assert experiment["name"]
    searcher = experiment["searcher"]
    assert searcher["name"] in {"single", "grid"}
    assert searcher["metric"]
    assert searcher["max_length"] == 1
    trials = combinations(experiment["hyperparameters"])
    if searcher["name"] == "single":
        assert len(trials) == 1, "a single-trial experiment with searched hyperparameters"
    for trial in trials:
        hp = layers(load_hparams(trial))
        files, flags = evaluation_inputs({}, cli_flags(), hp.evaluation)
        configs = build_configs(files, flags, also_known=ALSO_KNOWN)
        assert configs, trial
        build_sink_settings({}, merged_over(sink_flags(), hp.sinks))
        auto = merged_auto_export(None, hp.auto_export)
        if auto is not None:
            auto.check()  # its destinations exist and take these keys


def test_the_grid_file_gives_every_version_on_every_task():
    experiment = yaml.safe_load((CONFIGS / "grid_versions_by_task.yaml").read_text())
    trials = combinations(experiment["hyperparameters"])
    assert experiment["searcher"]["name"] == "grid"
    pairs = set()
    for trial in trials:
        (config,) = configs_from(trial, cli_flags())
        pairs.add((config.llm_args["artifact_name"], config.task_name))
        assert config.llm_name == "hf"
    versions = experiment["hyperparameters"]["checkpoint"]["vals"]
    assert len(versions) >= 2
    assert pairs == {(v, t) for v in versions for t in ("ARC", "MMLU")}
    assert len(trials) == len(pairs)


def test_the_task_list_file_evaluates_each_task_with_its_settings():
    experiment = yaml.safe_load((CONFIGS / "task_list.yaml").read_text())
    (trial,) = combinations(experiment["hyperparameters"])
    arc, mmlu, gsm8k = configs_from(trial, cli_flags(num_fewshot=5, wandb_upload_results=True))
    assert (arc.task_name, arc.num_fewshot) == ("ARC", 25)
    assert (mmlu.task_name, mmlu.num_fewshot, mmlu.subjects) == ("MMLU", 0, ("anatomy", "astronomy"))
    assert (gsm8k.task_name, gsm8k.max_tokens, gsm8k.num_samples) == ("GSM8K", 256, 200)
    assert {c.batch_size for c in (arc, mmlu, gsm8k)} == {16}
    hp = layers(load_hparams(trial))
    settings = build_sink_settings({}, merged_over(sink_flags(wandb_upload_results=True), hp.sinks))
    assert settings.wandb_upload_results is False


SEED_HYPERPARAMETERS = """
experiment_name: "my_experiment"
llm_name: "Llama31_8B_Instruct_HF"
wandb_project: "my_wandb_project"
task_args:
  - task_name: "ARC"
    num_fewshot: 3
    num_samples: 100
"""


def test_the_seed_example_holds_the_guides_hyperparameters_as_written():
    experiment = yaml.safe_load((CONFIGS / "seed_example.yaml").read_text())
    hparams = dict(experiment["hyperparameters"])
    assert hparams.pop("models") == "my_models.py"  # the one key added, for llm_name's class
    assert hparams == yaml.safe_load(SEED_HYPERPARAMETERS)
    (config,) = configs_from(experiment["hyperparameters"], cli_flags())
    assert (config.llm_name, config.task_name, config.num_fewshot, config.num_samples) == (
        "Llama31_8B_Instruct_HF",
        "ARC",
        3,
        100,
    )
