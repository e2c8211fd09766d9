"""The root command: evaluate a model on a task, then send the bundle to the sinks asked for."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eval_framework.cli.common import app, parse_path, say_on_interrupt, setup_logging
from eval_framework.cli.options import sink_options
from eval_framework.config import load_env, read_config_file, split_list
from eval_framework.errors import ConfigError, ExportError
from eval_framework.invocation_config import configs_with_sources
from eval_framework.llm_args import parse_llm_args
from eval_framework.models.auto_batch import parse_batch_size
from eval_framework.sinks.settings import SinkSettings, build_sink_settings, is_sink_key

if TYPE_CHECKING:
    from eval_framework.cli.determined_run import TrialRun
    from eval_framework.exporting import AutoExport
    from eval_framework.sinks.publish import PublishOptions


@app.callback(invoke_without_command=True)
@sink_options
def evaluate_command(
    ctx: typer.Context,
    llm_name: Annotated[
        str | None,
        typer.Option(
            help="Model: a class in the --models file, a dotted import path, or a built-in backend "
            "(hf, openai, embedded)."
        ),
    ] = None,
    task_name: Annotated[
        list[str] | None,
        typer.Option(
            help="Task: a built-in name (see 'eval_framework tasks') or the path of a task YAML file; "
            "several (comma-separated or repeated) are evaluated with one model load."
        ),
    ] = None,
    models: Annotated[
        Path | None, typer.Option(parser=parse_path, help="Python file that defines model classes.")
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="W&B Registry checkpoint to evaluate, e.g. wandb-registry-model/llama-sft:v7 or "
            "llama-sft:prod (same as --llm-args artifact_name=...; --llm-name defaults to hf; any "
            "model class taking checkpoint= can evaluate it)."
        ),
    ] = None,
    artifact_dir: Annotated[
        Path | None,
        typer.Option(
            parser=parse_path,
            help="Keep downloaded checkpoints here and reuse them. "
            "[default: WANDB_ARTIFACT_DIR, else a temporary directory]",
        ),
    ] = None,
    llm_args: Annotated[
        list[str] | None,
        typer.Option(
            help="Model constructor arguments as key=value (typed; nested a.b=v); "
            "several may follow one flag."
        ),
    ] = None,
    num_fewshot: Annotated[
        int | None,
        typer.Option(
            help="Few-shot examples per prompt. [default: the task's standard count, "
            "see 'eval_framework tasks']"
        ),
    ] = None,
    num_samples: Annotated[
        int | None, typer.Option(help="Evaluate a seeded random subset of this many samples. [default: all]")
    ] = None,
    subjects: Annotated[
        list[str] | None,
        typer.Option(help="Only these subjects (comma-separated or repeated), e.g. MMLU subjects."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for subset and few-shot selection. [default: 1234]")
    ] = None,
    batch_size: Annotated[
        str | None,
        typer.Option(
            help="Samples (questions) per model batch, each batch written as it finishes; a question's "
            "choices are scored together. 'auto': the largest batch that fits in memory, found by "
            "halving from 64 on running out of it. [default: 8]"
        ),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Max new tokens for generation tasks. [default: the task's]")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(parser=parse_path, help="Where bundles are written. [default: outputs]")
    ] = None,
    task_data_dir: Annotated[
        Path | None,
        typer.Option(
            parser=parse_path, help="Local copy of a built-in task's data: <split>.jsonl/.csv/.parquet files."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Recompute a finished evaluation.")] = False,
    *,
    sink_flags: dict[str, Any],  # the --wandb-* and --hf-* options (@sink_options)
    context: Annotated[
        str | None,
        typer.Option(
            help="Execution context: local, or determined (a Determined trial: its hyperparameters say "
            "what to evaluate; see docs/determined.md). [default: local]"
        ),
    ] = None,
    hparams: Annotated[
        Path | None,
        typer.Option(
            parser=parse_path,
            help="With --context determined off a cluster: run this experiment file's (fixed) "
            "hyperparameters, or a file of hyperparameters, as a trial on this machine.",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(parser=parse_path, help="YAML file with any of these options (flags win).")
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option(parser=parse_path, help="Load this .env file instead of ./.env.")
    ] = None,
    export_config: Annotated[
        Path | None,
        typer.Option(
            parser=parse_path,
            help="YAML file with an auto_export block (destinations, configs): export the finished "
            "evaluation there (see 'eval_framework export').",
        ),
    ] = None,
    show_config: Annotated[
        bool,
        typer.Option(
            help="Print the settings this command would use (defaults < --config < flags, each with "
            "where it came from; secrets masked) and exit without evaluating."
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log details and show tracebacks.")
    ] = False,
) -> None:
    """Evaluate a model on a task (the root command), or run a subcommand."""
    setup_logging(verbose)
    load_env(env_file)
    if ctx.invoked_subcommand is not None:
        return
    from eval_framework.registry.progress import set_download_bar_factory
    from eval_framework.reporting import download_bar

    set_download_bar_factory(download_bar)

    parsed_args = parse_llm_args(llm_args) if llm_args else {}
    if checkpoint:
        parsed_args["artifact_name"] = checkpoint
        llm_name = llm_name or "hf"
    if artifact_dir:
        parsed_args["artifact_dir"] = str(artifact_dir)
    flags: dict[str, Any] = {
        "llm_name": llm_name,
        "task_name": split_list(task_name or None, "task_name"),
        "models": models,
        "llm_args": parsed_args or None,
        "num_fewshot": num_fewshot,
        "num_samples": num_samples,
        "subjects": split_list(subjects or None, "subjects"),
        "seed": seed,
        "batch_size": parse_batch_size(batch_size),
        "max_tokens": max_tokens,
        "output_dir": output_dir,
        "task_data_dir": task_data_dir,
        "overwrite": overwrite or None,
        "context": context,
    }
    from eval_framework.exporting import auto_export_settings

    file_values = _registry_keys_as_args(read_config_file(config) if config else {})
    has_block = "auto_export" in file_values
    auto = auto_export_settings(file_values.pop("auto_export", None), export_config)
    trial = None
    if str(context or file_values.get("context") or "").strip().lower() == "determined":
        from eval_framework.cli.determined_run import apply_trial

        trial, file_values, flags, sink_flags, auto = apply_trial(
            hparams, file_values, flags, sink_flags, auto
        )
    elif hparams is not None:
        raise ConfigError("--hparams runs a Determined trial's hyperparameters: add --context determined")
    evaluation_keys = {k: v for k, v in file_values.items() if not is_sink_key(k)}
    configured = configs_with_sources(
        evaluation_keys, flags, also_known=[*SinkSettings.model_fields, "auto_export"]
    )
    configs = [config for config, _ in configured]
    settings = build_sink_settings(file_values, sink_flags)
    if len(configs) > 1 and settings.wandb_run_id:
        raise ConfigError(
            "--wandb-run-id names one W&B run, and these tasks are logged as one run each; drop it "
            "(each run's id is derived from its evaluation) or evaluate one task"
        )
    shown = _Shown(configured, settings, auto, file_values, sink_flags, export_config, has_block)
    if trial is None or show_config:
        _evaluate(shown, show_config)
        return
    from eval_framework.cli.determined_run import trial_processes

    with trial_processes(trial.trial, configs[0].output_dir) as context:
        if context is not None:  # the chief: the others wait for it
            _evaluate(shown, show_config, trial, context)


@dataclasses.dataclass(frozen=True)
class _Shown:
    """The command's merged settings, as evaluated or shown by --show-config."""

    configured: list[Any]
    settings: SinkSettings
    auto: AutoExport | None
    file_values: dict[str, Any]
    sink_flags: dict[str, Any]
    export_config: Path | None
    has_block: bool


def _evaluate(shown: _Shown, show_config: bool, trial: TrialRun | None = None, context: Any = None) -> None:
    """Show the settings, or evaluate every task and export (inside a trial: in its Core API
    context)."""
    configured, settings, auto = shown.configured, shown.settings, shown.auto
    if show_config:
        import sys

        from eval_framework.cli.show_config import settings_text

        given = (("--export-config", shown.export_config), ("--config", shown.has_block))
        auto_source = " over ".join(where for where, value in given if value)
        sys.stdout.write(
            settings_text(configured, settings, auto, auto_source, shown.file_values, shown.sink_flags)
        )
        return
    from eval_framework.sinks.publish import preflight

    sinks = settings.publish_options()
    preflight(sinks)  # a missing extra or token costs seconds, not an evaluation
    if auto is not None:
        auto.check()
    from eval_framework.runner import plan_all

    plans = plan_all([config for config, _ in configured])  # every task checked before the model loads
    output_dir = plans[0].config.output_dir
    say_on_interrupt(f"whatever finished is saved under {output_dir}; rerun the same command to resume")
    if trial is not None:
        from eval_framework.cli.determined_run import run_trial

        run_trial(trial, plans, sinks, auto, context)
        return
    from eval_framework.cli.invocation_run import run_invocation

    run_invocation(plans, sinks, auto)


def _registry_keys_as_args(values: dict[str, Any]) -> dict[str, Any]:
    """``checkpoint:`` and ``artifact_dir:`` in a --config file, as the flags of the same names
    take them: model arguments (``llm_name`` defaults to hf with a checkpoint)."""
    values = dict(values)
    checkpoint, artifact_dir = values.pop("checkpoint", None), values.pop("artifact_dir", None)
    if checkpoint is None and artifact_dir is None:
        return values
    args = values.get("llm_args") or {}
    if not isinstance(args, dict):
        return values  # refused with its own message when validated
    added = {"artifact_name": checkpoint, "artifact_dir": artifact_dir}
    values["llm_args"] = {**args, **{k: str(v) for k, v in added.items() if v is not None}}
    if checkpoint is not None:
        values.setdefault("llm_name", "hf")
    return values


def auto_export_bundle(bundle_dir: Path, auto: AutoExport) -> None:
    """The evaluation's auto_export: each destination on its own (one that fails, even its check,
    never stops another), its failure named with the command that retries it (exit 7)."""
    from eval_framework.cli.export import print_summary
    from eval_framework.exporting import export_command, run_export

    say_on_interrupt(f"the evaluation is complete in {bundle_dir}; export it with 'eval_framework export'")
    destinations = list(dict.fromkeys(auto.destinations))
    failures: list[ExportError] = []
    for name in destinations:
        config = {name: auto.configs.get(name) or {}}
        try:
            summary, error = run_export([bundle_dir], [name], config)
        except ConfigError as exc:  # it passed its check when the command started; it fails it now
            command = export_command([bundle_dir], [name], config)
            failures.append(ExportError(str(exc), sink=name, command=command, bundle=bundle_dir))
            continue
        print_summary(summary, [name])
        if isinstance(error, ExportError):
            failures.append(error)
        elif error is not None:
            raise error
    if len(failures) == 1:
        raise failures[0]
    if failures:
        commands = [f.command for f in failures if f.command]
        raise ExportError.gathered(failures, " && ".join(commands), bundle=bundle_dir)


def publish_and_report(bundles: list[Path], sinks: PublishOptions, live: Any = None) -> None:
    """Publish each bundle; say where it went; one ExportError at the end for what failed."""
    from eval_framework.errors import ExportError
    from eval_framework.reporting import stderr, stdout
    from eval_framework.sinks.publish import publish, upload_command

    failed: list[Path] = []
    failures: list[ExportError] = []
    for bundle_dir in bundles:
        try:
            report = publish(bundle_dir, sinks, live)
        except ExportError as exc:
            failed.append(bundle_dir)
            failures.append(exc)
            continue
        if report.hf_url:
            stdout.print(f"Hugging Face: {report.hf_url}")
        if report.wandb is not None:
            if report.wandb.url:
                stdout.print(f"W&B run: {report.wandb.url}")
            elif report.wandb.sync_command:
                how = (
                    "was already logged offline (not synced yet)"
                    if report.wandb.already_offline
                    else "logged offline"
                )
                stderr.print(f"W&B run {report.wandb.run_id} {how}; sync it with: "
                             f"{report.wandb.sync_command}")  # fmt: skip
            if report.wandb.pending and sinks.wandb is not None:
                online = dataclasses.replace(sinks, wandb=dataclasses.replace(sinks.wandb, mode="online"))
                stderr.print(f"Still to do online ({', '.join(report.wandb.pending)}): "
                             f"{upload_command([bundle_dir], online)}")  # fmt: skip
    if failed:
        raise ExportError.gathered(failures, upload_command(failed, sinks))
