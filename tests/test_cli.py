"""End-to-end CLI runs: real models, real bundles, and every bad input of the core."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from eval_framework.bundle_schema import ResultsFile
from tests.conftest import USER_MODELS


def _bundle(output: Path) -> Path:
    (bundle,) = [p for p in output.iterdir() if p.is_dir()]
    return bundle


def test_evaluates_a_tiny_model_built_in_the_test(cli, tiny_model_dir, letters_task, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "--context",
        "local",
        "--llm-name",
        "hf",
        "--llm-args",
        f"checkpoint={tiny_model_dir}",
        "dtype=float32",
        "--task-name",
        letters_task,
        "--num-fewshot",
        "1",
        "--output-dir",
        out,
        "--batch-size",
        "4",
    )
    assert result.code == 0, result.err
    bundle = _bundle(out)
    assert {p.name for p in bundle.iterdir()} >= {
        "metadata.json",
        "samples.jsonl",
        "results.json",
        "eval.log",
    }
    rows = [json.loads(line) for line in (bundle / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert all(len(r["fewshot_ids"]) == 1 for r in rows)
    results = json.loads((bundle / "results.json").read_text())["metrics"]
    acc = sum(r["scores"]["acc"] for r in rows) / 6
    assert results["overall"]["acc"] == pytest.approx(
        {"value": acc, "stderr": results["overall"]["acc"]["stderr"], "n": 6}
    )
    assert set(results["subjects"]) == {"copy", "reverse"}
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["status"] == "complete"
    assert meta["framework"]["name"] == "eval_framework"
    assert meta["task"]["num_fewshot"] == 1
    assert meta["environment"]["torch"]
    assert "overall" in result.out
    assert str(bundle) in result.out


def test_same_command_lands_in_same_bundle_and_is_not_recomputed(cli, letters_task, tmp_path):
    args = [
        "--models",
        USER_MODELS,
        "--llm-name",
        "HashLLM",
        "--task-name",
        letters_task,
        "--output-dir",
        tmp_path / "out",
    ]
    log = tmp_path / "calls.log"
    os.environ["EF_TEST_CALL_LOG"] = str(log)
    try:
        assert cli(*args).code == 0
        first = log.read_text().count("x")
        again = cli(*args)
        assert again.code == 0
        assert "reusing" in again.err.lower()
        assert log.read_text().count("x") == first  # nothing recomputed
        assert cli(*args, "--overwrite").code == 0
        assert log.read_text().count("x") == 2 * first
    finally:
        del os.environ["EF_TEST_CALL_LOG"]
    assert len([p for p in (tmp_path / "out").iterdir() if p.is_dir()]) == 1


def test_settings_that_change_results_change_the_bundle(cli, letters_task, tmp_path):
    base = [
        "--models",
        USER_MODELS,
        "--llm-name",
        "HashLLM",
        "--task-name",
        letters_task,
        "--output-dir",
        tmp_path / "out",
    ]
    assert cli(*base).code == 0
    assert cli(*base, "--batch-size", "2").code == 0  # batch size does not change results
    assert cli(*base, "--num-fewshot", "1").code == 0
    assert cli(*base, "--llm-args", "bias=x").code == 0
    assert len([p for p in (tmp_path / "out").iterdir() if p.is_dir()]) == 3


def test_shipped_checkpoints_differ_clearly(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("demo")  # as the README's quick start runs it: every default
    assert result.code == 0, result.err
    accs = {}
    for bundle in [p for p in (tmp_path / "outputs" / "demo").iterdir() if p.is_dir()]:
        meta = json.loads((bundle / "metadata.json").read_text())
        accs[meta["model"]["name"]] = json.loads((bundle / "results.json").read_text())["metrics"]["overall"][
            "acc"
        ]
    assert set(accs) == {"tiny-letters-v0", "tiny-letters-v1", "tiny-letters-v2"}
    assert accs["tiny-letters-v0"]["value"] < 0.4  # near chance (4 choices)
    assert accs["tiny-letters-v2"]["value"] > 0.9
    assert (
        accs["tiny-letters-v0"]["value"] < accs["tiny-letters-v1"]["value"] < accs["tiny-letters-v2"]["value"]
    )
    # it ends with the comparison: each version against its predecessor, and the plot
    assert "tiny-letters: 3 versions, each against its predecessor" in result.out
    lines = [line for line in result.out.splitlines() if "McNemar, n=200" in line]
    assert len(lines) == 4  # v1 vs v0 and v2 vs v1, on acc and acc_norm
    assert all("<0.001" in line for line in lines)
    plot = tmp_path / "outputs" / "demo" / "comparison.html"
    assert "<svg" in plot.read_text()


def test_root_command_on_an_embedded_checkpoint_and_generation_task(cli, tmp_path):
    result = cli(
        "--llm-name", "embedded", "--llm-args", "version=v2", "--task-name", "tiny-letters-gen",
        "--num-fewshot", "3", "--num-samples", "20", "--output-dir", tmp_path / "o",
    )  # fmt: skip
    assert result.code == 0, result.err
    bundle = _bundle(tmp_path / "o")
    rows = [json.loads(x) for x in (bundle / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 20
    for row in rows:  # generations stop at the newline and are scored by exact match
        assert "\n" not in row["generation"]
        assert row["extracted"] == row["generation"].strip()
        assert row["scores"]["exact_match"] == float(row["extracted"] == row["target"])
    em = json.loads((bundle / "results.json").read_text())["metrics"]["overall"]["exact_match"]
    assert em["n"] == 20
    assert em["value"] == sum(r["scores"]["exact_match"] for r in rows) / 20


def test_named_model_class_from_models_file(cli, letters_task, tmp_path):
    from eval_framework.embedded import checkpoint_dir

    result = cli(
        "--models",
        USER_MODELS,
        "--llm-name",
        "TinyLettersV2",
        "--llm-args",
        f"checkpoint={checkpoint_dir('v2')}",
        "--task-name",
        letters_task,
        "--output-dir",
        tmp_path / "o",
    )
    assert result.code == 0, result.err
    assert _bundle(tmp_path / "o").name.startswith("TinyLettersV2__letters__0shot__all__")


def test_tasks_command_lists_builtins(cli):
    result = cli("tasks")
    assert result.code == 0
    for name in (
        "ARC-Easy",
        "ARC-Challenge",
        "HellaSwag",
        "MMLU",
        "Winogrande",
        "PIQA",
        "GSM8K",
        "tiny-letters",
    ):
        assert name in result.out
    assert "exact_match" in result.out
    assert "acc_norm" in result.out


def test_help_documents_every_flag(cli):
    result = cli("--help")
    assert result.code == 0
    for flag in (
        "--context",
        "--models",
        "--llm-name",
        "--llm-args",
        "--task-name",
        "--num-fewshot",
        "--num-samples",
        "--output-dir",
        "--batch-size",
        "--max-tokens",
        "--env-file",
        "--overwrite",
    ):
        assert flag in result.out


# ---- bad input: one clear line, non-zero exit, nothing lost ----------------------------------


def _one_line_error(result, *needles: str) -> None:
    assert result.code != 0
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: "), result.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_task_suggests_close_names(cli):
    result = cli("--llm-name", "embedded", "--task-name", "hellaswg")
    _one_line_error(result, "unknown task 'hellaswg'", "HellaSwag", "eval_framework tasks")


def test_missing_models_file(cli, letters_task):
    _one_line_error(
        cli("--models", "nope.py", "--llm-name", "X", "--task-name", letters_task), "nope.py does not exist"
    )


def test_a_models_directory_is_named_as_one(cli, letters_task, tmp_path):
    _one_line_error(
        cli("--models", tmp_path, "--llm-name", "X", "--task-name", letters_task),
        "is a directory; pass the path of a Python file in it",
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--models", ""], "invalid value for '--models': is empty; pass a path"),
        (["--output-dir="], "invalid value for '--output-dir': is empty; pass a path"),
        (["--task-data-dir", " "], "invalid value for '--task-data-dir': is empty; pass a path"),
        (["--config", ""], "invalid value for '--config': is empty; pass a path"),
        (["upload", "", "--wandb-project", "p"], "invalid value for 'paths': is empty; pass a path"),
    ],
)
def test_an_empty_path_is_refused_not_read_as_the_current_directory(cli, args, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = [] if args[0] == "upload" else ["--llm-name", "embedded", "--task-name", "tiny-letters"]
    _one_line_error(cli(*base, *args), says)
    assert list(tmp_path.iterdir()) == []  # nothing was written to the current directory


def test_an_empty_path_in_a_config_file_is_refused(cli, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("llm_name: embedded\ntask_name: tiny-letters\noutput_dir: ''\n")
    says = "invalid 'output_dir' in the --config file (--output-dir): is empty"
    _one_line_error(cli("--config", config), says)


def test_unreadable_models_file(cli, letters_task, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def oops(:\n")
    _one_line_error(
        cli("--models", broken, "--llm-name", "X", "--task-name", letters_task),
        "broken.py:1 has a syntax error",
        "fix it and retry",
    )


def test_class_not_found_lists_classes(cli, letters_task):
    result = cli("--models", USER_MODELS, "--llm-name", "HashLM", "--task-name", letters_task)
    _one_line_error(
        result,
        "'HashLM' not found",
        "did you mean HashLLM",
        "model classes there: CheckpointHashLLM, HashLLM, TinyLettersV2",
    )


def test_bad_llm_args_syntax(cli, letters_task):
    _one_line_error(
        cli("--llm-name", "embedded", "--llm-args", "version", "--task-name", letters_task),
        "bad --llm-args entry 'version'",
        "NAME=VALUE",
    )


def test_unknown_llm_arg_lists_accepted(cli, letters_task, tmp_path):
    result = cli(
        "--models",
        USER_MODELS,
        "--llm-name",
        "HashLLM",
        "--llm-args",
        "colour=red",
        "--task-name",
        letters_task,
        "--output-dir",
        tmp_path / "o",
    )
    _one_line_error(result, "does not accept --llm-args colour", "use the names it accepts: bias, batch_size")


def test_fewshot_larger_than_pool(cli, letters_task):
    result = cli(
        "--models", USER_MODELS, "--llm-name", "HashLLM", "--task-name", letters_task, "--num-fewshot", "9"
    )
    _one_line_error(
        result, "--num-fewshot 9 is larger than the few-shot pool", "use --num-fewshot 1 or fewer"
    )


def test_dataset_not_reachable_offline_points_to_local_tasks(cli):
    result = cli("--models", USER_MODELS, "--llm-name", "HashLLM", "--task-name", "ARC-Easy")
    _one_line_error(result, "cannot load dataset allenai/ai2_arc", "--task-data-dir", "local data task")


def test_malformed_task_yaml_points_at_field(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: t\ndata: {eval: x.jsonl}\nprompt: '{q}'\ntarget: a\nkind: multiple_choice\nmax_tokens: -3\n"
    )
    _one_line_error(cli("--llm-name", "embedded", "--task-name", bad), "field 'max_tokens'", "docs/tasks.md")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_dir_not_writable_as_user(cli, letters_task, tmp_path):  # pragma: no cover - CI runs as root
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    _one_line_error(
        cli(
            "--models",
            USER_MODELS,
            "--llm-name",
            "HashLLM",
            "--task-name",
            letters_task,
            "--output-dir",
            ro / "x",
        ),
        "cannot write to output directory",
    )


def test_output_dir_not_writable(cli, letters_task, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    _one_line_error(
        cli(
            "--models",
            USER_MODELS,
            "--llm-name",
            "HashLLM",
            "--task-name",
            letters_task,
            "--output-dir",
            blocker / "out",
        ),
        "cannot write to output directory",
        "--output-dir",
    )


def test_model_load_failure(cli, letters_task, tmp_path):
    empty = tmp_path / "not-a-checkpoint"
    empty.mkdir()
    (empty / "README").write_text("nothing here")
    result = cli(
        "--llm-name",
        "hf",
        "--llm-args",
        f"checkpoint={empty}",
        "--task-name",
        letters_task,
        "--output-dir",
        tmp_path / "o",
    )
    _one_line_error(result, "could not load model", "config.json")


def test_failure_keeps_finished_results(cli, letters_task, tmp_path):
    out = tmp_path / "out"
    base = [
        "--models",
        USER_MODELS,
        "--llm-name",
        "HashLLM",
        "--task-name",
        letters_task,
        "--output-dir",
        out,
    ]
    assert cli(*base).code == 0
    bundle = _bundle(out)
    before = {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file()}
    os.environ["EF_TEST_CRASH_AFTER"] = "0"
    try:
        result = cli(*base, "--overwrite")
    finally:
        del os.environ["EF_TEST_CRASH_AFTER"]
    _one_line_error(result, "simulated crash")
    after = {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file()}
    assert after == before  # --overwrite restores the old bundle when the new run fails


def test_dotted_import_path_as_llm_name(cli, letters_task, tmp_path):
    result = cli("--llm-name", "tests.fixtures.user_models:HashLLM", "--task-name", letters_task,
                 "--output-dir", tmp_path / "o")  # fmt: skip
    assert result.code == 0, result.err
    assert _bundle(tmp_path / "o").name.startswith("HashLLM__letters__")
    _one_line_error(cli("--llm-name", "tests.fixtures.user_models:NotAModel", "--task-name", letters_task),
                    "is not a model class")  # fmt: skip


def test_uncached_hub_id_offline_is_a_clear_model_error(cli, letters_task, tmp_path):
    result = cli("--llm-name", "hf", "--llm-args", "checkpoint=some-org/some-model",
                 "--task-name", letters_task, "--output-dir", tmp_path / "o")  # fmt: skip
    _one_line_error(
        result, "could not load model 'some-org/some-model'", "offline, only cached hub models load"
    )
    assert not [p for p in (tmp_path / "o").iterdir() if p.is_dir() and (p / "results.json").exists()]


def test_python_api_matches_the_cli(cli, letters_task, tmp_path):
    from eval_framework import EvalConfig, evaluate

    outcome = evaluate(EvalConfig(llm_name="HashLLM", models=USER_MODELS, task_name=str(letters_task),
                                  output_dir=tmp_path / "o"))  # fmt: skip
    assert not outcome.reused
    assert outcome.bundle_dir.parent == tmp_path / "o"
    again = cli("--models", USER_MODELS, "--llm-name", "HashLLM", "--task-name", letters_task,
                "--output-dir", tmp_path / "o")  # fmt: skip
    assert again.code == 0
    assert "reusing" in again.err.lower()
    stored = (outcome.bundle_dir / "results.json").read_text()
    assert ResultsFile.model_validate_json(stored) == outcome.results


def test_a_display_name_does_not_make_a_second_bundle(cli, tmp_path):
    args = [
        "--llm-name",
        "embedded",
        "--task-name",
        "tiny-letters",
        "--num-samples",
        "5",
        "--output-dir",
        tmp_path,
    ]
    assert cli(*args, "--llm-args", "name=foo").code == 0
    again = cli(*args, "--llm-args", "name=bar")
    assert again.code == 0, again.err
    (bundle,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert bundle.name.startswith("foo__")
    assert str(bundle) in again.out


def test_an_output_dir_that_is_a_file_is_named_as_one(cli, tmp_path):
    taken = tmp_path / "results"
    taken.write_text("not a directory\n")
    result = cli("--llm-name", "embedded", "--task-name", "tiny-letters", "--output-dir", taken / "sub")
    _one_line_error(result, f"{taken} is a file, not a directory", "move that file away")
    assert taken.read_text() == "not a directory\n"


def test_upload_builds_no_evaluation_config(cli, tmp_path, monkeypatch):
    from eval_framework.config import EvalConfig

    out = tmp_path / "out"
    args = [
        "--llm-name",
        "embedded",
        "--task-name",
        "tiny-letters",
        "--num-samples",
        "4",
        "--output-dir",
        out,
    ]
    assert cli(*args).code == 0

    def refuse(self, **values):
        raise AssertionError(f"an EvalConfig was built: {values}")

    monkeypatch.setattr(EvalConfig, "__init__", refuse)
    config = tmp_path / "run.yaml"  # the evaluation's own keys in it are not the upload's
    config.write_text("llm_name: ''\nnum_fewshot: -1\nwandb_project: evals\n")
    result = cli("upload", out, "--config", config, "--wandb-mode", "offline", "--dry-run")
    assert result.code == 0, result.err
    assert json.loads(result.out)[0]["wandb"]["run"].startswith("<default entity>/evals/eval-")
    assert cli(*args).code == 1  # the root command does build one (the check above is live)


def test_the_root_command_and_upload_take_one_definition_of_the_sink_options():
    import typer

    from eval_framework.cli import app
    from eval_framework.cli.options import SINK_OPTIONS
    from eval_framework.sinks.settings import SinkSettings

    assert list(SINK_OPTIONS) == list(SinkSettings.model_fields)
    root = typer.main.get_command(app)

    def sink_params(command):
        return [(p.name, p.opts, p.secondary_opts, p.help) for p in command.params if p.name in SINK_OPTIONS]

    upload = root.commands["upload"]
    assert sink_params(root) == sink_params(upload)
    assert [name for name, *_ in sink_params(root)] == list(SINK_OPTIONS)


CHATTY = """
import logging

from eval_framework import BaseLLM, LoglikelihoodResult

log = logging.getLogger("chatty")


class Chatty(BaseLLM):
    def __init__(self, api_key: str = "", batch_size: int = 8) -> None:
        log.warning("connecting with api_key=%s", api_key)
        self.api_key = api_key

    def loglikelihood(self, requests):
        log.warning("scoring %d requests with key %s", len(requests), self.api_key)
        return [LoglikelihoodResult(-float(len(r.continuation)), False) for r in requests]
"""


def test_a_models_own_log_lines_are_scrubbed_and_kept_in_the_runs_log(cli, tmp_path):
    models = tmp_path / "chatty.py"
    models.write_text(CHATTY)
    secret = "sk-" + "S3cret" * 4
    args = ("--llm-name", "Chatty", "--llm-args", f"api_key={secret}", "--task-name", "tiny-letters")
    result = cli("--models", models, *args, "--num-samples", "2", "--output-dir", tmp_path / "o")
    assert result.code == 0, result.err
    assert secret not in result.err + result.out
    assert "connecting with api_key=***" in result.err
    (log_file,) = (tmp_path / "o").glob("*/eval.log")
    text = log_file.read_text()
    assert "requests with key ***" in text
    assert secret not in text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("upload", "out", "-v"), "put it before the subcommand (eval_framework -v upload ...)"),
        (("export", "out", "--env-file", "x"), "(eval_framework --env-file FILE export ...)"),
    ],
)
def test_a_root_option_after_a_subcommand_says_where_it_goes(cli, args, says):
    result = cli(*args)
    assert result.code == 2
    assert says in result.err
