"""``sweep``: evaluate the selected versions of a checkpoint collection (or local checkpoint
directories) on every task, one model load per version; see docs/sweeps.md."""

from __future__ import annotations

import copy
import inspect
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from eval_framework.cli.common import app, say_on_interrupt
from eval_framework.cli.evaluate import evaluate_command
from eval_framework.cli.options import option_group, sink_options
from eval_framework.cli.promote_options import PromotionFlags, checked_rule, promote_now, promotion_options
from eval_framework.errors import ConfigError, ExportError
from eval_framework.models.auto_batch import parse_batch_size

if TYPE_CHECKING:
    from eval_framework.config import EvalConfig
    from eval_framework.exporting import AutoExport
    from eval_framework.runner import EvalOutcome
    from eval_framework.sinks.publish import PublishOptions

#: The evaluation options a sweep takes, defined once by the root command (same names and help).
EVALUATE_OPTIONS = ("task_name", "llm_name", "models", "llm_args", "artifact_dir", "num_fewshot",
                    "num_samples", "subjects", "seed", "batch_size", "max_tokens", "output_dir",
                    "task_data_dir", "overwrite", "config")  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


def evaluate_options(command: F) -> F:
    """Add the root command's EVALUATE_OPTIONS where ``command``'s ``eval_flags`` parameter is; the
    command gets them as one mapping (None: not given)."""
    borrowed = dict(inspect.signature(evaluate_command).parameters)
    borrowed["llm_args"] = _with_help(
        borrowed["llm_args"],
        "Model constructor arguments as key=value (typed; nested a.b=v): repeat the flag or separate "
        "pairs with commas (a=1,b=2).",
    )
    return option_group(command, "eval_flags", [borrowed[name] for name in EVALUATE_OPTIONS])


def _with_help(param: inspect.Parameter, text: str) -> inspect.Parameter:
    """``param`` with its typer option's help replaced: after a subcommand, values do not run on
    past one flag (the command's argument must stay its own)."""
    kind, info = typing.get_args(param.annotation)
    info = copy.copy(info)
    info.help = text
    return param.replace(annotation=Annotated[kind, info])


@app.command("sweep")
@promotion_options
@sink_options
@evaluate_options
def sweep_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A registry collection (wandb-registry-model/llama-sft, llama-sft; no alias), or local "
            "checkpoint directories: a quoted glob ('runs/*/step-*') or a directory of them.",
            show_default=False,
        ),
    ],
    eval_flags: dict[str, Any],  # the root command's evaluation options (@evaluate_options)
    sink_flags: dict[str, Any],  # the --wandb-* and --hf-* options (@sink_options)
    versions: Annotated[
        str | None,
        typer.Option(
            help="Which versions: all, last:N, vA..vB (inclusive) or since:vN; for directories "
            "the bounds are their names. [default: all]"
        ),
    ] = None,
    every: Annotated[
        int | None,
        typer.Option(help="Every K-th selected version from the oldest; the newest is always kept."),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="i/n: evaluate this machine's share (i from 0 to n-1, round robin) of the selected versions."
        ),
    ] = None,
    print_grid: Annotated[
        bool,
        typer.Option(
            help="Print the selected versions as a Determined grid (hyperparameters, one trial "
            "per version) and exit without evaluating."
        ),
    ] = False,
    promotion: PromotionFlags = PromotionFlags(),  # --promote ... --dry-run (@promotion_options)
) -> None:
    """Evaluate each selected version (oldest first) on every task: one model load per version,
    finished evaluations reused, a failed version reported without stopping the others."""
    from eval_framework.sweep.versions import Selection, Shard, choose, list_versions

    selection, chosen_shard = Selection.parse(versions), Shard.parse(shard)  # bad input: before any lookup
    if every is not None and every < 1:
        raise ConfigError(f"invalid --every {every}: give a whole number of 1 or more")
    configs, sinks, _ = sweep_configs(eval_flags, sink_flags)
    rule = checked_rule(source, [c.task_name for c in configs], promotion)
    listed = list_versions(source)
    chosen = choose(listed, selection, every, chosen_shard)
    if print_grid:
        from eval_framework.sweep.grid import grid_yaml

        sys.stdout.write(grid_yaml(chosen, configs))
        return
    from eval_framework.reporting import stderr, stdout

    if not chosen:  # more shards than versions: this one has nothing to do
        stderr.print(f"shard {shard} holds none of the {len(listed)} versions selected; nothing to do")
        return
    from eval_framework.sinks.publish import preflight

    preflight(sinks)  # a missing extra or token costs seconds, not a sweep
    output_dir = configs[0].output_dir
    say_on_interrupt(f"whatever finished is saved under {output_dir}; rerun the same command to resume")
    from eval_framework.sweep.display import summary_line, summary_table, sweep_display
    from eval_framework.sweep.runner import SweepFailed, run_sweep

    exports = Exports(sinks)
    with sweep_display() as display:
        summary = run_sweep(chosen, configs, display, exports if sinks.any else None)
    stdout.print(summary_table(summary))
    stdout.print(summary_line(summary), markup=False, highlight=False)
    if rule is not None:  # on what finished, failed versions aside
        promote_now(source, output_dir, rule, promotion.dry_run)
    if summary.failed:
        raise SweepFailed(summary)
    exports.raise_failures()


def sweep_configs(
    eval_flags: dict[str, Any],
    sink_flags: dict[str, Any],
    command: str = "sweep",
    export_config: Path | None = None,
) -> tuple[list[EvalConfig], PublishOptions, AutoExport | None]:
    """One config per task (the checkpoint left out: each version sets its own), the sinks, and
    (for ``watch``, which exports as evaluations finish) the auto_export of --config and
    --export-config."""
    from eval_framework.config import read_config_file, split_list
    from eval_framework.exporting import auto_export_settings
    from eval_framework.invocation_config import configs_with_sources
    from eval_framework.llm_args import parse_llm_args
    from eval_framework.sinks.settings import SinkSettings, build_sink_settings, is_sink_key

    given = dict(eval_flags)
    config_file = given.pop("config")
    file_values = read_config_file(config_file) if config_file else {}
    auto = None
    if command == "watch":  # a sweep refuses the block (below)
        auto = auto_export_settings(file_values.pop("auto_export", None), export_config)
    for key in ("checkpoint", "auto_export", "context"):
        if key in file_values:
            raise ConfigError(f"'{key}' in the --config file does not apply to {command}; remove it "
                              f"(the {command}'s argument names the checkpoints)")  # fmt: skip
    llm_args = parse_llm_args(given["llm_args"]) if given["llm_args"] else {}
    artifact_dir = given.pop("artifact_dir")
    if artifact_dir:
        llm_args["artifact_dir"] = str(artifact_dir)
    file_args = file_values.get("llm_args") if isinstance(file_values.get("llm_args"), dict) else {}
    named = sorted(k for k in ("checkpoint", "artifact_name") if k in llm_args or k in (file_args or {}))
    if named:
        raise ConfigError(f"llm_args {', '.join(named)} names one checkpoint; a sweep's argument names "
                          "them all: remove it")  # fmt: skip
    batch = given["batch_size"]
    flags = {
        **given,
        "llm_name": given["llm_name"] or (None if file_values.get("llm_name") else "hf"),
        "task_name": split_list(given["task_name"] or None, "task_name"),
        "subjects": split_list(given["subjects"] or None, "subjects"),
        "llm_args": llm_args or None,
        "batch_size": parse_batch_size(batch),
        "overwrite": given["overwrite"] or None,
    }
    if not flags["task_name"] and not file_values.get("task_name") and not file_values.get("tasks"):
        raise ConfigError(f"{command} needs tasks: pass --task-name (e.g. --task-name ARC,MMLU)")
    evaluation = {k: v for k, v in file_values.items() if not is_sink_key(k)}
    configured = configs_with_sources(evaluation, flags, also_known=[*SinkSettings.model_fields])
    settings = build_sink_settings(file_values, sink_flags, f"eval_framework {command}")
    if settings.wandb_run_id:
        raise ConfigError(f"--wandb-run-id names one W&B run; a {command} logs one run per evaluation: "
                          "drop it")  # fmt: skip
    return [config for config, _ in configured], settings.publish_options(), auto


class Exports:
    """After each evaluation: publish its bundle to the --wandb-*/--hf-* sinks (the same records as
    live logging) and to the auto_export destinations, if any; a failure is said and the sweep goes
    on (exit 7 at the end)."""

    def __init__(self, sinks: PublishOptions, auto: AutoExport | None = None) -> None:
        self.sinks = sinks
        self.auto = auto
        self.failures: list[ExportError] = []
        self.failed: list[Path] = []  #: the bundles whose --wandb-*/--hf-* export failed
        self.auto_failures: list[ExportError] = []

    @property
    def any(self) -> bool:
        return self.sinks.any or self.auto is not None

    def __call__(self, outcome: EvalOutcome) -> None:
        from eval_framework.cli.evaluate import publish_and_report
        from eval_framework.reporting import stderr

        if self.sinks.any:
            try:
                publish_and_report([outcome.bundle_dir], self.sinks)
            except ExportError as exc:
                stderr.print(f"error: {exc}", markup=False, highlight=False)
                self.failures.append(exc)
                self.failed.append(outcome.bundle_dir)
        if self.auto is not None:
            from eval_framework.cli.common import on_interrupt
            from eval_framework.cli.evaluate import auto_export_bundle

            said = on_interrupt()  # auto_export_bundle says its own; the command's stands after it
            try:
                auto_export_bundle(outcome.bundle_dir, self.auto)
            except ExportError as exc:
                stderr.print(f"error: {exc}", markup=False, highlight=False)
                self.auto_failures.append(exc)
            finally:
                say_on_interrupt(said)

    def raise_failures(self) -> None:
        from eval_framework.sinks.publish import upload_command

        failures = self.failures + self.auto_failures
        if len(failures) == 1:
            raise failures[0]
        if failures:
            commands = [upload_command(self.failed, self.sinks)] if self.failures else []
            commands += [f.command for f in self.auto_failures if f.command]
            raise ExportError.gathered(failures, " && ".join(commands))
