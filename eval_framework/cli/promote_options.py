"""The promotion options ``compare``, ``sweep`` and ``watch`` share (see eval_framework.promotion)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from eval_framework.cli.options import option_group
from eval_framework.promotion import DEFAULT_ALPHA, parse_rule

if TYPE_CHECKING:
    from eval_framework.promotion import PromotionRule

F = TypeVar("F", bound=Callable[..., Any])

#: Option name -> its type, typer option and default.
PROMOTION_OPTIONS: dict[str, tuple[Any, Any]] = {
    "promote": (
        Annotated[str | None, typer.Option(
            "--promote", rich_help_panel="Promotion",
            help="Move this registry alias (e.g. best-arc) to a version that beats its holder per --when.",
        )],
        None,
    ),
    "when": (
        Annotated[str | None, typer.Option(
            "--when", rich_help_panel="Promotion",
            help='The rule of --promote: "<task>/<metric> improves", tested on the samples both versions '
                 "share.",
        )],
        None,
    ),
    "alpha": (
        Annotated[float, typer.Option(
            "--alpha", rich_help_panel="Promotion",
            help="The p-value a promotion's paired test must be under.",
        )],
        DEFAULT_ALPHA,
    ),
    "dry_run": (
        Annotated[bool, typer.Option(
            "--dry-run", rich_help_panel="Promotion", help="Say what --promote would move; change nothing.",
        )],
        False,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class PromotionFlags:
    """The promotion options as given (checked by ``rule``, when the command is ready to say so)."""

    promote: str | None = None
    when: str | None = None
    alpha: float = DEFAULT_ALPHA
    dry_run: bool = False

    def rule(self) -> PromotionRule | None:
        return parse_rule(self.promote, self.when, self.alpha)


def promotion_options(command: F) -> F:
    """Add the PROMOTION_OPTIONS to ``command`` where its ``promotion`` parameter is; the command
    gets them as ``PromotionFlags``."""
    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, (kind, default) in PROMOTION_OPTIONS.items()
    ]
    return option_group(command, "promotion", options, lambda given: PromotionFlags(**given))


def checked_rule(source: str, task_names: list[str], flags: PromotionFlags) -> PromotionRule | None:
    """The --promote rule of a ``sweep`` or ``watch`` of ``source``, refused before any work when it
    cannot apply: local checkpoint folders have no alias, and the rule's task must be swept."""
    from eval_framework.errors import ConfigError
    from eval_framework.sweep.versions import is_local_source

    rule = flags.rule()
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
