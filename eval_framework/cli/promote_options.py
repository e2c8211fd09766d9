"""The promotion options ``compare``, ``sweep`` and ``watch`` share (see eval_framework.promotion)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from eval_framework.promotion import PromotionRule

PROMOTE_OPTION = typer.Option(
    "--promote",
    help="Move this registry alias (e.g. best-arc) to a version that beats its holder per --when.",
    rich_help_panel="Promotion",
)
WHEN_OPTION = typer.Option(
    "--when",
    help='The rule of --promote: "<task>/<metric> improves", tested on the samples both versions share.',
    rich_help_panel="Promotion",
)
ALPHA_OPTION = typer.Option(
    "--alpha", help="The p-value a promotion's paired test must be under.", rich_help_panel="Promotion"
)
DRY_RUN_OPTION = typer.Option(
    "--dry-run", help="Say what --promote would move; change nothing.", rich_help_panel="Promotion"
)


def checked_rule(
    source: str, task_names: list[str], promote: str | None, when: str | None, alpha: float
) -> PromotionRule | None:
    """The --promote rule of a ``sweep`` or ``watch`` of ``source``, refused before any work when it
    cannot apply: local checkpoint folders have no alias, and the rule's task must be swept."""
    from eval_framework.errors import ConfigError
    from eval_framework.promotion import parse_rule
    from eval_framework.sweep.versions import is_local_source

    rule = parse_rule(promote, when, alpha)
    if rule is None:
        return None
    if is_local_source(source):
        raise ConfigError(
            f"--promote moves a registry alias, but {source} names local checkpoint folders; name a "
            "registry collection (e.g. wandb-registry-model/llama-sft), or drop --promote"
        )
    if not any(rule.task == name or rule.task.startswith(f"{name} (") for name in task_names):
        raise ConfigError(
            f"--when names task {rule.task}, which this command does not evaluate ({', '.join(task_names)}); "
            "name one of them"
        )
    return rule


def promote_now(source: str, output_dir: Path, rule: PromotionRule, dry_run: bool) -> None:
    """Apply ``rule`` to what ``source``'s versions have finished under ``output_dir``; the line
    it prints says what moved (or would, or why not)."""
    from eval_framework.promotion import promote, said
    from eval_framework.reporting import stderr

    decision = promote([source], output_dir, rule, dry_run)
    stderr.print(said(decision, dry_run), markup=False, highlight=False, soft_wrap=True)
