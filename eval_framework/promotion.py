"""Promotion: move a registry alias (``best-arc``) to a version that beats its current holder.

``--promote best-arc --when "ARC/acc improves"`` (on ``compare``, ``sweep`` and ``watch``): every
version evaluated on the task is tested against the alias's holder on the samples both evaluated
(``compare.compare_evaluations``: McNemar's exact test for an accuracy, a paired bootstrap
otherwise). The versions whose mean is higher with p below ``--alpha`` qualify; the alias moves to
the one with the highest mean (the newest on a tie). No version holding the alias yet: it goes to
the highest mean, without a test (there is nothing to beat). Each move is recorded with its
evidence in the winner's bundle ledger (``exports.jsonl``, destination ``registry-alias``) and in
the version's W&B metadata (``eval_framework_promotions``). ``--dry-run`` says what would move and
changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval_framework.errors import ConfigError, RegistryError, brief
from eval_framework.version import __version__

if TYPE_CHECKING:
    from eval_framework.compare import Comparison, Evaluation, MetricComparison
    from eval_framework.registry.reference import CheckpointRef

log = logging.getLogger(__name__)

DEFAULT_ALPHA = 0.05
#: The ledger destination of a promotion entry.
LEDGER_DESTINATION = "registry-alias"

_RULE = re.compile(r"^\s*(?P<task>.+)/(?P<metric>[^/\s]+)\s+improves\s*$")
#: Aliases the registry manages itself, or that name a version: never moved by a rule.
_RESERVED = re.compile(r"^(latest|v\d+)$")


@dataclass(frozen=True)
class PromotionRule:
    alias: str
    task: str
    metric: str
    alpha: float = DEFAULT_ALPHA

    @property
    def text(self) -> str:
        return f"{self.task}/{self.metric} improves"


def parse_rule(alias: str | None, when: str | None, alpha: float = DEFAULT_ALPHA) -> PromotionRule | None:
    """``--promote ALIAS --when "<task>/<metric> improves"``; None when neither is given."""
    if alias is None and when is None:
        return None
    if alias is None or when is None:
        given, missing = ("--promote", "--when") if alias is not None else ("--when", "--promote")
        example = '--promote best-arc --when "ARC/acc improves"'
        raise ConfigError(f"{given} needs {missing}: pass both, e.g. {example}")
    name = alias.strip()
    if not name or _RESERVED.match(name) or any(c in name for c in ":/ "):
        raise ConfigError(
            f"--promote {alias!r} cannot be moved by a rule (an alias is a name without ':', '/' or spaces, "
            "and not 'latest' or a version such as v3); pass a name such as best-arc"
        )
    match = _RULE.match(when)
    if match is None:
        raise ConfigError(
            f'--when {when!r} is not a rule; write "<task>/<metric> improves", e.g. "ARC/acc improves" '
            "(higher is better for every built-in metric)"
        )
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"--alpha {alpha} is not between 0 and 1; pass e.g. {DEFAULT_ALPHA}")
    return PromotionRule(name, match["task"].strip(), match["metric"], alpha)


@dataclass(frozen=True)
class Decision:
    """What the rule says: ``winner`` gets the alias (None: it stays), and why in ``reason``."""

    rule: PromotionRule
    collection: str  #: entity/project/name of the registry collection
    holder: str | None
    winner: str | None
    evidence: MetricComparison | None  #: the winner against the holder (None: no holder)
    reason: str
    bundle: Path | None = None  #: the winner's bundle on the task

    def record(self) -> dict[str, Any]:
        """The evidence as the ledger and the version's metadata keep it."""
        result = self.evidence.result if self.evidence is not None else None
        return {
            "alias": self.rule.alias,
            "collection": self.collection,
            "from": self.holder,
            "to": self.winner,
            "rule": self.rule.text,
            "alpha": self.rule.alpha,
            "test": result.test if result else None,
            "difference": result.difference if result else None,
            "ci": [result.ci_low, result.ci_high] if result else None,
            "confidence": result.confidence if result else None,
            "p_value": result.p_value if result else None,
            "n_shared": result.n_shared if result else None,
            "candidate_mean": result.candidate_mean if result else None,
            "baseline_mean": result.baseline_mean if result else None,
            "bundle": self.bundle.name if self.bundle else None,
            "reason": self.reason,
            "eval_framework_version": __version__,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def _task_label(comparison: Comparison, rule: PromotionRule) -> str:
    """The comparison's label of the rule's task: its name, or ``ARC (25-shot)`` when the task was
    evaluated with several shot counts (then the label must be given)."""
    if rule.task in comparison.tasks:
        return rule.task
    named = sorted({e.task for e in comparison.cells.values() if e.task_name == rule.task})
    if len(named) == 1:
        return named[0]
    if named:
        raise ConfigError(
            f"--when names {rule.task}, evaluated with several shot counts ({', '.join(named)}); "
            f'name one, e.g. --when "{named[0]}/{rule.metric} improves"'
        )
    shown = ", ".join(comparison.tasks) or "none"
    raise ConfigError(f"--when names task {rule.task}, which no compared bundle evaluated (tasks: {shown})")


def collection_of(evaluations: Sequence[Evaluation]) -> str:
    """The one registry collection (entity/project/name) the evaluations' versions belong to."""
    names = {e.version.qualified_name.split(":", 1)[0] for e in evaluations if e.version.qualified_name}
    if not names:
        raise ConfigError(
            "--promote moves a registry alias, but the compared versions are local checkpoints; compare the "
            "versions of a registry collection (e.g. wandb-registry-model/llama-sft)"
        )
    if len(names) > 1:
        raise ConfigError(
            f"--promote needs the versions of one collection, but these are of {len(names)} "
            f"({', '.join(sorted(names))}); compare one collection at a time"
        )
    return names.pop()


def _percent(value: float, binary: bool) -> str:
    return f"{value * 100:+.1f} points" if binary else f"{value:+.4g}"


def _said(comparison: MetricComparison) -> str:
    r = comparison.result
    assert r is not None
    binary = r.test == "mcnemar_exact"
    ci = f"{r.confidence:.0%} CI [{_percent(r.ci_low, binary)}, {_percent(r.ci_high, binary)}]"
    return f"{_percent(r.difference, binary)}, {ci}, p={r.p_value:.3g}, {r.test}, n={r.n_shared}"


def decide(comparison: Comparison, rule: PromotionRule, holder: str | None) -> Decision:
    """The rule applied to ``comparison`` (versions of one collection) with ``holder`` holding
    the alias now (a label such as ``v3``, or None)."""
    from eval_framework.compare import compare_evaluations

    task = _task_label(comparison, rule)
    cells = {label: e for (label, t), e in comparison.cells.items() if t == task}
    collection = collection_of(list(cells.values()))
    if not cells or not any(rule.metric in e.metrics for e in cells.values()):
        metrics = ", ".join(comparison.metrics.get(task, [])) or "none"
        raise ConfigError(
            f"--when names metric {rule.metric}, which {task} does not have (it has: {metrics})"
        )
    order = [v.label for v in comparison.versions if v.label in cells]

    def mean(label: str) -> float:
        value = cells[label].metrics[rule.metric].mean if rule.metric in cells[label].metrics else None
        return float(value) if isinstance(value, int | float) else float("-inf")

    if holder is None:
        best = max(order, key=lambda label: (mean(label), order.index(label)))
        reason = (
            f"no version held {rule.alias}: {best} has the highest {task}/{rule.metric} ({mean(best):.4g})"
        )
        return Decision(rule, collection, None, best, None, reason, cells[best].bundle)
    if holder not in cells:
        raise ConfigError(
            f"{holder} holds {rule.alias} but has no finished {task} evaluation among the compared "
            f"bundles, so nothing can be tested against it; evaluate it first (eval_framework sweep "
            f"{collection} --versions {holder}..{holder} --task-name {cells[order[-1]].task_name})"
        )
    tested = [
        compare_evaluations(cells[label], cells[holder], rule.metric, confidence=comparison.confidence)
        for label in order
        if label != holder and rule.metric in cells[label].metrics
    ]
    better = [c for c in tested if c.result and c.result.difference > 0 and c.result.p_value < rule.alpha]
    if better:
        best_c = max(better, key=lambda c: (mean(c.version), order.index(c.version)))
        reason = (
            f"{best_c.version} beats {holder} on {task}/{rule.metric}: {_said(best_c)} < alpha {rule.alpha:g}"
        )
        return Decision(
            rule, collection, holder, best_c.version, best_c, reason, cells[best_c.version].bundle
        )
    near = [c for c in tested if c.result]
    if not near:
        why = "no other version has a paired test against it" if tested else "no other version evaluated it"
        return Decision(rule, collection, holder, None, None, f"{rule.alias} stays on {holder}: {why}")
    closest = max(near, key=lambda c: (c.result.difference if c.result else 0.0, order.index(c.version)))
    reason = (
        f"{rule.alias} stays on {holder}: no version beats it on {task}/{rule.metric} with p < "
        f"{rule.alpha:g} (closest: {closest.version}, {_said(closest)})"
    )
    return Decision(rule, collection, holder, None, closest, reason)


def promote(
    inputs: Sequence[str | Path],
    output_dir: Path,
    rule: PromotionRule,
    dry_run: bool = False,
    confidence: float = 0.95,
) -> Decision:
    """Apply ``rule`` to the evaluations ``inputs`` name (as ``compare`` takes them): look up the
    alias's holder, decide, and unless ``dry_run`` move the alias and record the evidence."""
    from eval_framework.compare import compare

    return promote_in(compare(inputs, output_dir=output_dir, confidence=confidence), rule, dry_run)


def promote_in(comparison: Comparison, rule: PromotionRule, dry_run: bool = False) -> Decision:
    """``promote`` on a comparison already built."""
    from eval_framework.registry.aliases import alias_holder
    from eval_framework.registry.reference import parse_reference
    from eval_framework.registry.wandb_client import WandbRegistry

    collection = collection_of(list(comparison.cells.values()))
    ref = parse_reference(collection)
    registry = WandbRegistry()
    holder = alias_holder(registry, ref, rule.alias)
    decision = decide(comparison, rule, holder)
    if decision.winner is None or dry_run:
        return decision
    _move(registry, ref, decision)
    return decision


def _move(registry: Any, ref: CheckpointRef, decision: Decision) -> None:
    from eval_framework.registry.aliases import alias_holder, move_alias

    assert decision.winner is not None
    record = decision.record()
    try:
        move_alias(registry, ref, decision.winner, decision.rule.alias, record)
    except RegistryError as exc:
        try:
            moved = alias_holder(registry, ref, decision.rule.alias) == decision.winner
        except RegistryError:
            moved = False
        if not moved:
            raise
        # the alias moved, the version's metadata was not written: the ledger still has it all
        _ledger(decision, {**record, "status": "moved", "metadata": f"not written: {brief(exc)}"})
        raise RegistryError(
            f"{decision.rule.alias} moved to {decision.winner}, but its evidence could not be written to "
            f"the version's metadata ({brief(exc)}); the ledger of {decision.bundle} holds it"
        ) from exc
    _ledger(decision, {**record, "status": "moved", "metadata": "written"})


def _ledger(decision: Decision, entry: dict[str, Any]) -> None:
    from eval_framework.sinks import ledger

    if decision.bundle is not None:
        ledger.append(decision.bundle, {"destination": LEDGER_DESTINATION, **entry})


def said(decision: Decision, dry_run: bool) -> str:
    """The one line a command prints about a promotion."""
    rule = decision.rule
    if decision.winner is None:
        return f"promotion: {decision.reason}"
    if decision.winner == decision.holder:
        return f"promotion: {rule.alias} stays on {decision.holder}"
    verb = "would move" if dry_run else "moved"
    source = f"from {decision.holder} " if decision.holder else ""
    return f"promotion: {rule.alias} {verb} {source}to {decision.winner} ({decision.reason})"
