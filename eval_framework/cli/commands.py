"""The commands that neither evaluate from flags nor export: ``tasks``, ``resolve``, ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eval_framework.cli.common import app, parse_path


@app.command("tasks")
def tasks_command() -> None:
    """List the built-in tasks with their kind, metrics and language."""
    from rich.table import Table

    from eval_framework.reporting import stdout
    from eval_framework.tasks import list_tasks

    table = Table(title="Built-in tasks (any task YAML file path works too)", title_justify="left")
    table.add_column("task", no_wrap=True)
    table.add_column("shots", justify="right")
    for column in ("few-shot rule", "kind", "metrics", "language", "source", "description"):
        table.add_column(column, overflow="fold")
    for info in list_tasks():
        kind = info.kind
        if info.stop:
            kind += f", stops at {' '.join(repr(s) for s in info.stop)}"
        table.add_row(
            info.name,
            str(info.num_fewshot),
            info.fewshot_rule,
            kind,
            ", ".join(info.metrics),
            info.language,
            info.source,
            info.description,
        )
    stdout.print(table)
    stdout.print(
        "shots: the standard count, used when --num-fewshot is not given. Few-shot rules, prompts "
        "and scoring (as lm-evaluation-harness): docs/tasks.md"
    )


@app.command("resolve")
def resolve_command(
    reference: Annotated[
        str, typer.Argument(help="Checkpoint reference, e.g. wandb-registry-model/llama-sft:v7.")
    ],
    artifact_dir: Annotated[
        Path | None,
        typer.Option(parser=parse_path, help="Where to keep the checkpoint. [default: WANDB_ARTIFACT_DIR]"),
    ] = None,
    checkpoint_subdir: Annotated[
        str | None, typer.Option(help="Which checkpoint to use when the artifact holds several.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the full identity as JSON.")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Show what would be fetched, and where, without fetching.")
    ] = False,
) -> None:
    """Resolve and download a registered checkpoint without evaluating; prints its local path."""
    import contextlib
    import json

    from eval_framework.errors import ConfigError
    from eval_framework.registry.destination import persistent_root
    from eval_framework.registry.resolver import ResolveOptions, Resolver
    from eval_framework.reporting import stdout

    resolver = Resolver(
        options=ResolveOptions(artifact_dir=artifact_dir, checkpoint_subdir=checkpoint_subdir)
    )
    resolver.parse(reference)  # a malformed reference fails before any network call
    if dry_run:
        plan = resolver.plan(reference)
        if json_output:
            print(json.dumps(plan.as_dict(), indent=2))
            return
        info = plan.as_dict()
        aliases = ", ".join(info["aliases"])
        stdout.print(f"{info['qualified_name']} ({aliases}) -> {info['destination']}")
        fetch = len(info["files_to_fetch"])
        stdout.print(f"{info['files']} files, {info['bytes']} bytes; would fetch {fetch} files, "
                     f"{info['bytes_to_fetch']} bytes")  # fmt: skip
        return
    if persistent_root(artifact_dir) is None:
        raise ConfigError(
            "resolve keeps the checkpoint for later use: pass --artifact-dir DIR or set WANDB_ARTIFACT_DIR"
        )
    with contextlib.ExitStack() as stack:
        resolved = resolver.resolve(reference, stack)
    print(json.dumps(resolved.as_dict(), indent=2) if json_output else resolved.path)


@app.command("demo")
def demo_command(
    output_dir: Annotated[Path, typer.Option(parser=parse_path, help="Where bundles are written.")] = Path(
        "outputs/demo"
    ),
    num_fewshot: Annotated[int, typer.Option(help="Few-shot examples per prompt.")] = 3,
    overwrite: Annotated[bool, typer.Option(help="Recompute finished evaluations.")] = False,
) -> None:
    """Evaluate every shipped tiny-letters checkpoint version offline, then compare them: each
    version against its predecessor on the samples both scored, and a plot of the trajectory."""
    from eval_framework.compare import compare
    from eval_framework.compare.plot_html import write_html
    from eval_framework.compare.render import tables
    from eval_framework.config import EvalConfig
    from eval_framework.embedded import checkpoint_versions
    from eval_framework.reporting import progress_bar, stdout, summary_table
    from eval_framework.runner import evaluate

    outcomes = []
    for version in checkpoint_versions():
        cfg = EvalConfig(
            llm_name="embedded",
            llm_args={"version": version},
            task_name="tiny-letters",
            num_fewshot=num_fewshot,
            output_dir=output_dir,
            overwrite=overwrite,
        )
        with progress_bar(f"tiny-letters {version}") as update:
            outcome = evaluate(cfg, progress=update)
        outcomes.append((version, outcome))
    stdout.print(summary_table(outcomes[-1][1]))
    for version, outcome in outcomes:
        stdout.print(f"{version}: {outcome.bundle_dir}")
    bundles = [outcome.bundle_dir for _, outcome in outcomes]
    comparison = compare(bundles)
    for table in tables(comparison):
        stdout.print(table)
    plot = output_dir / "comparison.html"
    write_html(comparison, plot)
    stdout.print(f"plot of the versions: {plot}")
    stdout.print(f"again, or with more bundles: eval_framework compare {output_dir} --plot {plot}")
