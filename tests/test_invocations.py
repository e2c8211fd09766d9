"""Several tasks in one command: one model load, one bundle per task, an invocation record that
export takes by id, per-task settings, and --show-config."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from eval_framework import export_results
from eval_framework.invocations import masked_command
from tests.conftest import USER_MODELS
from tests.plugins import installed_plugin
from tests.registry.conftest import fake_wandb, s3, s3_server, wandb_http  # noqa: F401  (fixtures)
from tests.registry.test_resolver import _register_shipped

#: HashLLM on a multiple-choice task and a generation task
TWO_TASKS = ("--models", USER_MODELS, "--llm-name", "HashLLM", "--task-name", "tiny-letters,tiny-letters-gen")

COUNTED_MODEL = """
import os
from tests.fixtures.user_models import HashLLM


class CountedLLM(HashLLM):
    def __init__(self, batch_size: int = 8) -> None:
        with open(os.environ["EF_TEST_LOADS"], "a") as handle:
            handle.write("load\\n")
        super().__init__(batch_size=batch_size)
"""


@pytest.fixture
def counted(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A models file whose model writes a line each time it is built, and that file."""
    models = tmp_path / "counted.py"
    models.write_text(COUNTED_MODEL)
    loads = tmp_path / "loads.txt"
    monkeypatch.setenv("EF_TEST_LOADS", str(loads))
    return models, loads


def _record(out: Path) -> dict:
    (path,) = (out / "invocations").iterdir()
    return json.loads(path.read_text())


def test_several_tasks_load_the_model_once_and_write_a_bundle_each(cli, counted, tmp_path):
    models, loads = counted
    out = tmp_path / "out"
    result = cli(
        "--models",
        models,
        "--llm-name",
        "CountedLLM",
        "--task-name",
        "tiny-letters,tiny-letters-gen",
        "--num-samples",
        "5",
        "--output-dir",
        out,
    )
    assert result.code == 0, result.err
    assert loads.read_text().splitlines() == ["load"]
    record = _record(out)
    assert [e["task"] for e in record["bundles"]] == ["tiny-letters", "tiny-letters-gen"]
    assert [e["status"] for e in record["bundles"]] == ["complete", "complete"]
    assert record["status"] == "complete"
    assert record["command"][:3] == ["eval_framework", "--models", str(models)]
    bundles = [out / e["bundle"] for e in record["bundles"]]
    metas = [json.loads((b / "metadata.json").read_text()) for b in bundles]
    assert [m["task"]["name"] for m in metas] == ["tiny-letters", "tiny-letters-gen"]
    assert [m["natural_key"] for m in metas] == [e["natural_key"] for e in record["bundles"]]
    # the load is timed once, in the bundle whose run paid for it
    assert metas[0]["timings"]["model_load_s"] is not None
    assert metas[1]["timings"]["model_load_s"] is None
    assert f"Invocation {record['invocation_id']}: 2 evaluations" in result.out

    again = cli(
        "--models",
        models,
        "--llm-name",
        "CountedLLM",
        "--task-name",
        "tiny-letters",
        "--task-name",
        "tiny-letters-gen",
        "--num-samples",
        "5",
        "--output-dir",
        out,
    )
    assert again.code == 0, again.err
    assert loads.read_text().splitlines() == ["load"]  # all reused: no model needed
    assert [e["status"] for e in _record(out)["bundles"]] == ["reused", "reused"]


def test_a_tasks_list_gives_each_task_its_settings_and_flags_win(cli, counted, tmp_path):
    models, _ = counted
    config = tmp_path / "eval.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        models: {models}
        llm_name: CountedLLM
        num_samples: 6
        tasks:
          - tiny-letters
          - task_name: tiny-letters
            num_fewshot: 1
            num_samples: 4
            subjects: copy
    """)
    )
    out = tmp_path / "out"
    assert cli("--config", config, "--output-dir", out).code == 0
    metas = [json.loads((out / e["bundle"] / "metadata.json").read_text()) for e in _record(out)["bundles"]]
    assert [(m["task"]["num_fewshot"], m["task"]["num_samples"], m["task"]["subjects"]) for m in metas] == [
        (0, 6, ["copy", "reverse"]),
        (1, 4, ["copy"]),
    ]
    flagged = tmp_path / "flagged"
    assert cli("--config", config, "--num-samples", "3", "--output-dir", flagged).code == 0
    sizes = [
        json.loads((flagged / e["bundle"] / "metadata.json").read_text())["task"]["num_samples"]
        for e in _record(flagged)["bundles"]
    ]
    assert sizes == [3, 3]  # a flag wins over every task's own value


@pytest.mark.parametrize(
    ("tasks", "code", "said"),
    [
        (
            "tasks: [{task_name: tiny-letters, num_fewshot: -1}]",
            2,
            "'tasks[0].num_fewshot' in the --config file",
        ),
        (
            "tasks: [{task_name: tiny-letters, batch_size: 2}]",
            2,
            "tasks[0] in the --config file: unknown key 'batch_size'",
        ),
        ("tasks: [{num_fewshot: 2}]", 2, "tasks[0] in the --config file has no task_name"),
        ("tasks: []", 2, "'tasks' in the --config file must be a non-empty list"),
        ("task_name: tiny-letters\ntasks: [tiny-letters]", 2, "sets both task_name and tasks"),
        ("tasks: [no-such-task]", 4, "unknown task 'no-such-task'"),
    ],
)
def test_a_wrong_tasks_list_is_refused_before_anything_is_written(cli, counted, tmp_path, tasks, code, said):
    models, loads = counted
    config = tmp_path / "eval.yaml"
    config.write_text(f"models: {models}\nllm_name: CountedLLM\n{tasks}\n")
    result = cli("--config", config, "--output-dir", tmp_path / "out")
    assert result.code == code, result.err
    assert said in result.err
    assert not (tmp_path / "out").exists()
    assert not loads.exists()


def test_task_name_on_the_command_line_picks_from_the_list_with_its_settings(cli, counted, tmp_path):
    models, _ = counted
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"models: {models}\nllm_name: CountedLLM\ntasks:\n"
        "  - {task_name: tiny-letters, num_fewshot: 1, num_samples: 3}\n  - tiny-letters-gen\n"
    )
    out = tmp_path / "out"
    assert cli("--config", config, "--task-name", "tiny-letters", "--output-dir", out).code == 0
    (bundle,) = [p for p in out.iterdir() if p.is_dir()]
    assert bundle.name.startswith("CountedLLM__tiny-letters__1shot__3__")
    assert not (out / "invocations").exists()  # one task: its bundle is the record


def test_a_failed_task_stops_the_invocation_keeping_what_finished(cli, tmp_path, monkeypatch):
    out = tmp_path / "out"
    # the first task's 5 samples x 4 choices pass; the second task's 5 generations do not
    monkeypatch.setenv("EF_TEST_CRASH_AFTER", "22")
    result = cli(*TWO_TASKS, "--num-samples", "5", "--output-dir", out)
    assert result.code != 0
    record = _record(out)
    assert [e["status"] for e in record["bundles"]] == ["complete", "failed"]
    assert record["status"] == "failed"
    assert "simulated crash" in record["bundles"][1]["error"]
    assert (
        json.loads((out / record["bundles"][0]["bundle"] / "metadata.json").read_text())["status"]
        == "complete"
    )
    monkeypatch.delenv("EF_TEST_CRASH_AFTER")
    resumed = cli(*TWO_TASKS, "--num-samples", "5", "--output-dir", out)
    assert resumed.code == 0, resumed.err
    assert [e["status"] for e in _record(out)["bundles"]] == ["reused", "complete"]


def test_export_takes_an_invocation_by_id_or_record_with_its_stored_configs(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "eval.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        models: {USER_MODELS}
        llm_name: HashLLM
        num_samples: 4
        task_name: [tiny-letters, tiny-letters-gen]
        auto_export:
          destinations: [local]
          configs:
            local: {{output_dir: {tmp_path / "auto"}, format: csv}}
    """)
    )
    result = cli("--config", config)  # the default --output-dir, ./outputs
    assert result.code == 0, result.err
    record = _record(tmp_path / "outputs")
    assert record["export_configs"] == {"local": {"output_dir": str(tmp_path / "auto"), "format": "csv"}}
    assert (tmp_path / "auto" / "summary.csv").is_file()

    by_id = export_results([record["invocation_id"]], dest="local")  # the stored config: csv in auto/
    assert by_id.count("local", "unchanged") == 2
    as_in_the_seed = export_results(invocation_ids=[record["invocation_id"]], dest="local", force=True)
    assert as_in_the_seed.count("local", "updated") == 2
    path = tmp_path / "outputs" / "invocations" / f"{record['invocation_id']}.json"
    elsewhere = tmp_path / "elsewhere"
    done = cli("export", path, "--dest", "local", "--config", json.dumps({"output_dir": str(elsewhere)}))
    assert done.code == 0, done.err
    rows = json.loads((elsewhere / "summary.json").read_text())["rows"]
    assert sorted(r["task"] for r in rows) == ["tiny-letters", "tiny-letters-gen"]
    unknown = cli("export", "inv-0123456789ab", "--dest", "local")
    assert unknown.code == 2
    assert "no invocation inv-0123456789ab in outputs/invocations" in unknown.err
    typo = cli("export", "inv-nope", "--dest", "local")
    assert typo.code == 2
    assert "inv-nope is neither an invocation id" in typo.err


def test_a_registry_checkpoint_is_looked_up_once_for_every_task(cli, request, tmp_path):
    registry = request.getfixturevalue("fake_wandb")  # the registry fixtures, imported above
    _register_shipped(registry)
    config = tmp_path / "eval.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        models: {USER_MODELS}
        llm_name: CheckpointHashLLM
        checkpoint: tiny:prod
        tasks: [tiny-letters, {{task_name: tiny-letters-gen, num_samples: 3}}]
        num_samples: 4
    """)
    )
    out = tmp_path / "out"
    result = cli("--config", config, "--output-dir", out)
    assert result.code == 0, result.err
    assert registry.lookups == ["tiny-local:prod", "tiny:prod"], registry.lookups
    metas = [json.loads((out / e["bundle"] / "metadata.json").read_text()) for e in _record(out)["bundles"]]
    assert [m["task"]["num_samples"] for m in metas] == [4, 3]
    names = {m["model"]["details"]["registry_checkpoint"]["qualified_name"] for m in metas}
    assert names == {m["model"]["identity"]["artifact"]["qualified_name"] for m in metas}
    assert len(names) == 1


def test_model_arguments_merge_key_by_key_across_file_and_flags(cli, tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text(f"models: {USER_MODELS}\nllm_name: HashLLM\nllm_args: {{bias: b1}}\n")
    shown = yaml.safe_load(
        cli("--config", config, "--task-name", "tiny-letters", "--llm-args", "api_key=k-123456789",
            "--show-config").out
    )  # fmt: skip
    assert shown["llm_args"] == {"bias": "b1", "api_key": "***"}


def test_one_wandb_run_id_for_several_tasks_is_refused(cli, tmp_path):
    result = cli(*TWO_TASKS, "--wandb-project", "p", "--wandb-run-id", "r1", "--output-dir", tmp_path / "out")
    assert result.code == 2
    assert "--wandb-run-id names one W&B run" in result.err
    assert not (tmp_path / "out").exists()


def test_show_config_says_where_each_value_came_from_and_reads_back(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EF_SECRET_FOR_TEST", "x")
    config = tmp_path / "eval.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        models: {USER_MODELS}
        llm_name: HashLLM
        llm_args: {{api_key: sk-live-0123456789abcdef}}
        num_samples: 6
        tasks:
          - tiny-letters
          - {{task_name: tiny-letters-gen, num_fewshot: 1}}
        wandb_project: proj
    """)
    )
    result = cli("--config", config, "--batch-size", "4", "--show-config")
    assert result.code == 0, result.err
    text = result.out
    assert "sk-live-0123456789abcdef" not in text
    assert "batch_size: 4  # flag" in text
    assert "num_samples: 6  # --config" in text
    assert "seed: 1234  # default" in text
    assert "num_fewshot: 1  # --config tasks[1]" in text
    assert 'wandb_project: "proj"  # --config' in text
    shown = yaml.safe_load(text)
    assert [t["task_name"] for t in shown["tasks"]] == ["tiny-letters", "tiny-letters-gen"]
    assert not any(p.is_dir() for p in tmp_path.iterdir() if p.name != "eval.yaml")  # nothing evaluated


def test_the_recorded_command_masks_secrets():
    argv = [
        "eval_framework",
        "--llm-args",
        "api_key=sk-0123456789",
        "--hf-token",
        "hf_abcdefghijkl",
        "--wandb-api-key=abcdefghijkl",
        "--task-name",
        "ARC",
    ]
    masked = masked_command(argv)
    assert "sk-0123456789" not in " ".join(masked)
    assert "hf_abcdefghijkl" not in masked
    assert "--wandb-api-key=***" in masked
    assert masked[-2:] == ["--task-name", "ARC"]


def test_show_config_output_is_a_config_file_giving_the_same_settings(cli, tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"models: {USER_MODELS}\nllm_name: HashLLM\n"
        "tasks: [tiny-letters, {task_name: tiny-letters-gen, seed: 7}]\n"
    )
    shown = cli("--config", config, "--num-samples", "5", "--wandb-tags", "a", "--show-config").out
    saved = tmp_path / "shown.yaml"
    saved.write_text(shown)
    again = cli("--config", saved, "--show-config").out

    def values(text: str) -> dict:
        return yaml.safe_load(text)

    assert values(again) == values(shown)
    assert [t.get("seed") for t in values(shown)["tasks"]] == [1234, 7]


FLAKY_PLUGIN = """
from typing import ClassVar
from pydantic import BaseModel, ConfigDict
from eval_framework.sinks.base import Exported


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    down_after_checks: int = 0  # its check fails from the (n+1)th on: a server that went down
    fail_publish: bool = False
    url: str = "flaky://default"


class Flaky:
    name: ClassVar[str] = "flaky"
    Config: ClassVar[type[BaseModel]] = Config
    checks: ClassVar[list] = []

    def __init__(self, config):
        self.config = config

    def preflight(self):
        Flaky.checks.append(1)
        if self.config.down_after_checks and len(Flaky.checks) > self.config.down_after_checks:
            raise ConnectionRefusedError("flaky.example is down")

    def publish(self, bundle, force=False):
        if self.config.fail_publish:
            raise RuntimeError("flaky refused " + bundle.metadata().task.name)
        return Exported("flaky", bundle.dir, "created", self.config.url)
"""


@pytest.fixture
def flaky(tmp_path, monkeypatch):
    """An installed export destination whose server can go down mid-run."""
    with installed_plugin(tmp_path, monkeypatch, "flaky_sink", FLAKY_PLUGIN, "flaky = flaky_sink:Flaky"):
        yield


def _auto(tmp_path: Path, flaky_keys: str) -> Path:
    config = tmp_path / "eval.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        models: {USER_MODELS}
        llm_name: HashLLM
        num_samples: 4
        tasks: [tiny-letters, tiny-letters-gen, {{task_name: tiny-letters, num_fewshot: 1}}]
        auto_export:
          destinations: [flaky, local]
          configs:
            flaky: {flaky_keys}
            local: {{output_dir: {tmp_path / "e"}}}
    """)
    )
    return config


def test_a_destination_going_down_mid_run_stops_no_task_and_no_other_destination(cli, flaky, tmp_path):
    out = tmp_path / "out"
    # checked once when the command starts and once per export: down from the second task's export
    result = cli("--config", _auto(tmp_path, "{down_after_checks: 2}"), "--output-dir", out)
    assert result.code == 7, result.err
    record = _record(out)
    assert [e["status"] for e in record["bundles"]] == ["complete", "complete", "complete"]
    assert record["status"] == "complete"
    assert [bool(e["export_errors"]) for e in record["bundles"]] == [False, True, True]
    assert "flaky.example is down" in record["bundles"][1]["export_errors"][0]
    rows = json.loads((tmp_path / "e" / "summary.json").read_text())["rows"]
    assert len(rows) == 3  # local took every bundle
    assert result.err.count("flaky.example is down") == 2  # each failure said once
    assert "2 exports failed" in result.err
    assert "finish the export with: eval_framework export" in result.err


def test_the_last_tasks_failed_export_is_said_too(cli, flaky, tmp_path):
    result = cli("--config", _auto(tmp_path, "{fail_publish: true}"), "--output-dir", tmp_path / "out")
    assert result.code == 7, result.err
    for task in ("tiny-letters", "tiny-letters-gen"):
        assert f"flaky refused {task}" in result.err
    assert result.err.count("error: ") == 4  # three failures, then the count
    assert "3 exports failed" in result.err


def test_a_stopped_invocation_says_so_in_its_record(cli, tmp_path):
    models = tmp_path / "stopping.py"
    models.write_text(
        "from tests.fixtures.user_models import HashLLM\n\n\n"
        "class StoppedLLM(HashLLM):\n"
        "    def loglikelihood(self, requests):\n"
        "        raise KeyboardInterrupt  # Ctrl-C in the first batch\n"
    )
    out = tmp_path / "out"
    tasks = ("--task-name", "tiny-letters,tiny-letters-gen")
    result = cli(
        "--models", models, "--llm-name", "StoppedLLM", *tasks, "--num-samples", "4", "--output-dir", out
    )
    assert result.code == 130
    record = _record(out)  # written before the model loaded
    assert record["status"] == "interrupted"
    assert [e["status"] for e in record["bundles"]] == ["interrupted", "planned"]


def test_a_masked_secret_is_never_sent_as_the_secret(cli, flaky, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    config = _auto(tmp_path, '{url: "https://bob:hunter2-secret@dash.example"}')
    assert cli("--config", config).code == 0
    record = _record(tmp_path / "outputs")
    assert "hunter2-secret" not in json.dumps(record)
    assert record["export_configs"]["flaky"]["url"] == "https://bob:***@dash.example"
    again = export_results([record["invocation_id"]], dest="flaky")  # the record's config, less the url
    assert {e.location for e in again.exported} == {"flaky://default"}
    assert "flaky export's url was recorded with its secret masked" in caplog.text

    shown = tmp_path / "shown.yaml"
    shown.write_text(cli("--config", config, "--llm-args", "api_key=sk-live-123456789", "--show-config").out)
    assert "a secret, masked" in shown.read_text()
    refused = cli("--config", shown)
    assert refused.code == 2
    assert "llm_args.api_key in --config" in refused.err
    assert "is ***, a secret masked in eval_framework's output" in refused.err
    inline = cli("export", tmp_path / "outputs", "--dest", "flaky", "--config", '{"url": "https://u:***@h"}')
    assert inline.code == 2
    assert "url in --config is ***" in inline.err


def test_show_config_names_the_task_entry_a_value_came_from_whatever_the_flags(cli, tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"models: {USER_MODELS}\nllm_name: HashLLM\nnum_samples: 6\n"
        "tasks: [tiny-letters, {task_name: tiny-letters-gen, num_fewshot: 2, max_tokens: 8, seed: 3}]\n"
    )
    picked = cli("--config", config, "--task-name", "tiny-letters-gen", "--seed", "9", "--show-config").out
    assert "num_fewshot: 2  # --config tasks[1]" in picked
    assert "max_tokens: 8  # --config tasks[1]" in picked
    assert "seed: 9  # flag" in picked
    assert 'task_name: "tiny-letters-gen"  # flag' in picked
    assert "auto_export" not in picked
    both = cli("--config", config, "--show-config").out
    assert 'task_name: "tiny-letters"  # --config tasks[0]' in both
    assert "num_samples: 6  # --config" in both
