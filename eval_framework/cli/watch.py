"""``watch``: evaluate each new version of a checkpoint collection (or new checkpoint directories)
as it lands, with the sweep's options; exactly once across watchers sharing the output directory.
See docs/sweeps.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eval_framework.cli.common import app, parse_path, say_on_interrupt
from eval_framework.cli.options import sink_options
from eval_framework.cli.promote_options import PromotionFlags, checked_rule, promote_now, promotion_options
from eval_framework.cli.sweep import Exports, evaluate_options, sweep_configs
from eval_framework.errors import ConfigError

if TYPE_CHECKING:
    from eval_framework.promotion import PromotionRule
    from eval_framework.sweep.runner import VersionResult
    from eval_framework.sweep.watch import AfterVersionFn


@app.command("watch")
@promotion_options
@sink_options
@evaluate_options
def watch_command(
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
    interval: Annotated[str, typer.Option(help="Time between polls: 30s, 10m, 1h, or seconds.")] = "10m",
    until: Annotated[
        str | None,
        typer.Option(
            help="Stop after a duration (8h), at a time (2026-12-06T08:00), or once version vN is "
            "evaluated (v12). [default: run until stopped]",
            show_default=False,
        ),
    ] = None,
    versions: Annotated[
        str | None,
        typer.Option(
            help="Which versions, as sweep takes them: all, last:N, vA..vB or since:vN; those already "
            "there are caught up on. [default: all]"
        ),
    ] = None,
    export_config: Annotated[
        Path | None,
        typer.Option(
            parser=parse_path,
            help="YAML file with an auto_export block (destinations, configs): export each finished "
            "evaluation there (see 'eval_framework export').",
        ),
    ] = None,
    promotion: PromotionFlags = PromotionFlags(),  # --promote ... --dry-run (@promotion_options)
) -> None:
    """Poll SOURCE every --interval and evaluate each version not yet evaluated on every task
    (oldest first, one model load per version); other watchers sharing the output directory
    split the work, each version evaluated once."""
    from eval_framework.sweep.versions import Selection
    from eval_framework.sweep.watch_options import Until, WatchOptions, parse_duration

    # bad input: refused before any lookup, nothing created
    seconds = parse_duration(interval, "--interval")
    stop = Until.parse(until)
    selection = Selection.parse(versions)
    if eval_flags["overwrite"]:
        raise ConfigError("watch never recomputes a finished evaluation: drop --overwrite (recompute"
                          " one: 'eval_framework sweep SOURCE --versions vN..vN --overwrite')")  # fmt: skip
    configs, sinks, auto = sweep_configs(eval_flags, sink_flags, "watch", export_config)
    rule = checked_rule(source, [c.task_name for c in configs], promotion)
    from eval_framework.sinks.publish import preflight

    preflight(sinks)  # a missing extra or token costs seconds, not a night of watching
    if auto is not None:
        auto.check()
    output_dir = configs[0].output_dir
    say_on_interrupt(f"whatever finished is saved under {output_dir}; rerun the same command to go on")
    from eval_framework.reporting import stdout
    from eval_framework.sweep.watch import WatchFailed, watch
    from eval_framework.sweep.watch_display import summary_line, watch_display

    exports = Exports(sinks, auto)
    options = WatchOptions(interval=seconds, until=stop, selection=selection)
    with watch_display(source) as display:
        after = _promoter(source, output_dir, rule, promotion.dry_run) if rule is not None else None
        summary = watch(source, configs, options, display, exports if exports.any else None, after)
    stdout.print(summary_line(summary), markup=False, highlight=False)
    if summary.failed:
        raise WatchFailed(summary)
    exports.raise_failures()


def _promoter(source: str, output_dir: Path, rule: PromotionRule, dry_run: bool) -> AfterVersionFn:
    """After each version that finished: apply the promotion rule. A failure (the registry down)
    is said and the watch goes on; the next finished version tries again."""
    from eval_framework.errors import EvalFrameworkError
    from eval_framework.reporting import stderr

    def after(result: VersionResult) -> None:
        if result.failed:
            return
        try:
            promote_now(source, output_dir, rule, dry_run)
        except EvalFrameworkError as exc:
            stderr.print(f"warning: promotion after {result.version.shown} failed: {exc}", markup=False,
                         highlight=False, soft_wrap=True)  # fmt: skip

    return after
