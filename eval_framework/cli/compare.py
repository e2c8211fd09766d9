"""``compare``: versions x tasks from finished bundles, with paired significance against a baseline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from eval_framework.cli.common import app, parse_path
from eval_framework.cli.promote_options import PromotionFlags, promotion_options

if TYPE_CHECKING:
    from eval_framework.compare import Comparison

FORMATS = ("table", "json", "md")


@app.command("compare")
@promotion_options
def compare_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Bundle directories, directories holding bundles, or a registry collection "
            "(wandb-registry-model/llama-sft, llama-sft) whose versions' bundles are under --output-dir.",
            show_default=False,
        ),
    ],
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Test every version against this one (e.g. v40). [default: each against its predecessor]"
        ),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="table, json or md (markdown, for pull requests).")
    ] = "table",
    plot: Annotated[
        Path | None,
        typer.Option(
            parser=parse_path, help="Also draw the metrics across versions: out.png (plot extra) or out.html."
        ),
    ] = None,
    output_dir: Annotated[
        Path, typer.Option(parser=parse_path, help="Where a collection's bundles are looked for.")
    ] = Path("outputs"),
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    seed: Annotated[int, typer.Option(help="Seed of the paired bootstrap (metrics that are not 0/1).")] = 0,
    resamples: Annotated[int, typer.Option(help="Paired bootstrap resamples.")] = 4000,
    wandb_project: Annotated[
        str | None,
        typer.Option(help="Also log the comparison (a table and a chart per metric) to this W&B project."),
    ] = None,
    wandb_entity: Annotated[
        str | None, typer.Option(help="W&B entity (team or user) of --wandb-project.")
    ] = None,
    wandb_mode: Annotated[
        str | None, typer.Option(help="online, offline or disabled. [default: online when a key is set]")
    ] = None,
    promotion: PromotionFlags = PromotionFlags(),  # --promote ... --dry-run (@promotion_options)
) -> None:
    """Compare checkpoint versions across tasks: mean, stderr and n of each metric, and each version
    against its baseline on the samples both evaluated (McNemar's exact test for accuracy, a
    seeded paired bootstrap otherwise)."""
    from eval_framework.compare import compare
    from eval_framework.compare.plot_data import check_plot_path
    from eval_framework.errors import ConfigError

    if format not in FORMATS:
        raise ConfigError(f"--format {format} is not one of {', '.join(FORMATS)}; pass one of them")
    kind = check_plot_path(plot) if plot is not None else None  # before any work
    rule = promotion.rule()
    _check_wandb_flags(wandb_project, wandb_entity, wandb_mode)
    comparison = compare(
        inputs,
        baseline=baseline,
        output_dir=output_dir,
        confidence=confidence,
        seed=seed,
        resamples=resamples,
    )
    for path, why in comparison.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    for warning in comparison.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if rule is not None:  # refused before the tables: local folders have no alias to move
        from eval_framework.promotion import collection_of

        collection_of(list(comparison.cells.values()))
    _print(comparison, format)
    if plot is not None:
        _write_plot(comparison, plot, kind)
    if wandb_project is not None:
        from eval_framework.compare.wandb_log import log_comparison

        # main() owns the process: the SDK stages its tables beside the run, not in the home directory
        logged = log_comparison(comparison, wandb_project, wandb_entity, output_dir, wandb_mode)
        if logged.url:
            print(f"W&B: {logged.url}", file=sys.stderr)
        elif logged.sync_command:
            print(f"W&B: logged offline; upload with: {logged.sync_command}", file=sys.stderr)
    if rule is not None:
        from eval_framework.promotion import promote_in, said

        print(said(promote_in(comparison, rule, promotion.dry_run), promotion.dry_run), file=sys.stderr)


def _check_wandb_flags(project: str | None, entity: str | None, mode: str | None) -> None:
    """Said before any work: a missing extra, a bad mode, a flag without its project."""
    from eval_framework.errors import ConfigError, missing_extra

    if project is None:
        if entity or mode:
            raise ConfigError(
                "--wandb-entity and --wandb-mode need --wandb-project; pass it, or leave them out"
            )
        return
    import importlib.util

    from eval_framework.sinks.wandb_mode import choose_mode
    from eval_framework.sinks.wandb_spec import WandbOptions

    if importlib.util.find_spec("wandb") is None:
        raise missing_extra("wandb", "wandb", ConfigError)
    choose_mode(WandbOptions(project=project, mode=mode))  # type: ignore[arg-type]  # refuses a bad mode


def _print(comparison: Comparison, format: str) -> None:
    if format == "json":
        from eval_framework.compare.render import as_json

        print(as_json(comparison))
    elif format == "md":
        from eval_framework.compare.render import markdown

        print(markdown(comparison), end="")
    else:
        from eval_framework.compare.render import tables
        from eval_framework.reporting import stdout

        for table in tables(comparison):
            stdout.print(table)


def _write_plot(comparison: Comparison, plot: Path, kind: str | None) -> None:
    if kind == ".png":
        from eval_framework.compare.plot_png import write_png

        write_png(comparison, plot)
    else:
        from eval_framework.compare.plot_html import write_html

        write_html(comparison, plot)
    print(f"plot: {plot}", file=sys.stderr)
