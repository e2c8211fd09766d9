# ruff: noqa: F811  (pytest fixtures imported from other test modules)
"""--promote ALIAS --when "<task>/<metric> improves": the alias moves through the SDK's alias API
(against the fake W&B server) only when the evidence holds, and each move is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval_framework.compare import compare
from eval_framework.errors import ConfigError
from eval_framework.promotion import PromotionRule, decide, parse_rule
from tests.compare.bundles import restamp
from tests.compare.conftest import evaluated  # noqa: F401  (the session's real bundles)
from tests.registry.conftest import fake_wandb, s3, s3_server  # noqa: F401  (fixtures)

COLLECTION = "acme-org/wandb-registry-model/llama-sft"
ALIAS = "best-letters"
RULE = "tiny-letters/acc improves"


def _registry_bundles(evaluated: dict[str, Path], out: Path) -> dict[str, Path]:
    """The shipped v0..v2 evaluations (about 30 %, 64 % and 98 % on 200 samples) as versions
    v0..v2 of the collection."""
    return {
        v: restamp(evaluated[v], out / f"llama-sft-{v}", qualified_name=f"{COLLECTION}:{v}")
        for v in ("v0", "v1", "v2")
    }


def _rule(alpha: float = 0.05) -> PromotionRule:
    rule = parse_rule(ALIAS, RULE, alpha)
    assert rule is not None
    return rule


@pytest.fixture
def registry(fake_wandb):
    """The collection in the fake registry, with the alias on v0."""
    for index in range(3):
        config = fake_wandb.stored_file("config.json", b"{}")
        fake_wandb.add_version(
            "wandb-registry-model", "llama-sft", [config], aliases=(ALIAS,) if index == 0 else ()
        )
    return fake_wandb


def _holder(fake) -> list[str]:
    members = fake.collections[("acme-org", "wandb-registry-model", "llama-sft")].members
    return [f"v{i}" for i, (_, aliases) in enumerate(members) if ALIAS in aliases]


def _ledger(bundle: Path) -> list[dict]:
    path = bundle / "exports.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["destination"] == "registry-alias"]


# ---- the rule -----------------------------------------------------------------------------
def test_a_rule_names_a_task_and_a_metric():
    rule = parse_rule("best-arc", "ARC (25-shot)/acc_norm improves", 0.01)
    assert rule == PromotionRule("best-arc", "ARC (25-shot)", "acc_norm", 0.01)
    assert parse_rule(None, None) is None


@pytest.mark.parametrize(
    ("alias", "when", "alpha", "says"),
    [
        ("best", None, 0.05, "--promote needs --when: pass both"),
        (None, RULE, 0.05, "--when needs --promote: pass both"),
        ("best", "ARC acc improves", 0.05, 'is not a rule; write "<task>/<metric> improves"'),
        ("best", "ARC/acc gets worse", 0.05, "is not a rule"),
        ("latest", RULE, 0.05, "cannot be moved by a rule"),
        ("v3", RULE, 0.05, "cannot be moved by a rule"),
        ("a:b", RULE, 0.05, "cannot be moved by a rule"),
        ("best", RULE, 1.5, "--alpha 1.5 is not between 0 and 1"),
    ],
)
def test_a_bad_rule_says_what_to_write(alias, when, alpha, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_rule(alias, when, alpha)


# ---- the decision -------------------------------------------------------------------------
def test_the_alias_moves_to_the_best_version_that_beats_its_holder(evaluated, tmp_path):
    bundles = _registry_bundles(evaluated, tmp_path / "out")
    comparison = compare([tmp_path / "out"])
    decision = decide(comparison, _rule(), holder="v0")
    assert (decision.holder, decision.winner) == ("v0", "v2")  # v1 beats v0 too; v2 is higher
    assert decision.bundle == bundles["v2"]
    result = decision.evidence.result
    assert result.test == "mcnemar_exact"
    assert result.difference > 0.5
    assert result.p_value < 1e-10
    assert decision.record()["ci"][0] > 0
    assert "v2 beats v0 on tiny-letters/acc: +" in decision.reason


def test_the_alias_stays_when_nothing_beats_it_or_the_evidence_is_weak(evaluated, tmp_path):
    _registry_bundles(evaluated, tmp_path / "out")
    comparison = compare([tmp_path / "out"])
    top = decide(comparison, _rule(), holder="v2")
    assert top.winner is None
    assert top.reason.startswith(
        f"{ALIAS} stays on v2: no version beats it on tiny-letters/acc with p < 0.05"
    )
    strict = decide(comparison, _rule(alpha=1e-300), holder="v0")  # no evidence is that strong
    assert strict.winner is None
    assert "closest: v2, +" in strict.reason


def test_with_no_holder_the_alias_goes_to_the_highest_mean(evaluated, tmp_path):
    _registry_bundles(evaluated, tmp_path / "out")
    decision = decide(compare([tmp_path / "out"]), _rule(), holder=None)
    assert (decision.winner, decision.evidence) == ("v2", None)
    assert decision.reason.startswith(f"no version held {ALIAS}: v2 has the highest tiny-letters/acc")


def test_a_holder_without_an_evaluation_cannot_be_beaten(evaluated, tmp_path):
    _registry_bundles(evaluated, tmp_path / "out")
    with pytest.raises(
        ConfigError, match=r"v7 holds best-letters but has no finished tiny-letters evaluation"
    ):
        decide(compare([tmp_path / "out"]), _rule(), holder="v7")


def test_local_checkpoints_have_no_alias_to_move(evaluated, tmp_path):
    comparison = compare([evaluated["v0"], evaluated["v2"]])
    with pytest.raises(
        ConfigError, match="--promote moves a registry alias, but the compared versions are local"
    ):
        decide(comparison, _rule(), holder=None)


def test_compare_promote_on_local_checkpoints_is_refused_before_the_tables(cli, evaluated, tmp_path):
    result = cli("compare", evaluated["v0"], evaluated["v2"], "--promote", ALIAS, "--when", RULE)
    assert result.code == 2
    assert "--promote moves a registry alias, but the compared versions are local" in result.err
    assert result.out == ""


def test_an_unknown_task_or_metric_is_named(evaluated, tmp_path):
    _registry_bundles(evaluated, tmp_path / "out")
    comparison = compare([tmp_path / "out"])
    with pytest.raises(ConfigError, match=r"--when names task ARC, which no compared bundle evaluated"):
        decide(comparison, parse_rule(ALIAS, "ARC/acc improves"), holder="v0")
    with pytest.raises(
        ConfigError, match=r"--when names metric f1, which tiny-letters does not have \(it has: acc"
    ):
        decide(comparison, parse_rule(ALIAS, "tiny-letters/f1 improves"), holder="v0")


# ---- against the registry -----------------------------------------------------------------
def test_compare_promote_moves_the_alias_only_when_the_evidence_holds(cli, registry, evaluated, tmp_path):
    out = tmp_path / "out"
    bundles = _registry_bundles(evaluated, out)
    args = ["compare", "wandb-registry-model/llama-sft", "--output-dir", out, "--promote", ALIAS,
            "--when", RULE]  # fmt: skip

    dry = cli(*args, "--dry-run")
    assert dry.code == 0, dry.err
    assert f"promotion: {ALIAS} would move from v0 to v2 (v2 beats v0 on tiny-letters/acc: +" in dry.err
    assert _holder(registry) == ["v0"]  # nothing moved
    assert registry.alias_moves == []
    assert not _ledger(bundles["v2"])

    moved = cli(*args)
    assert moved.code == 0, moved.err
    assert f"promotion: {ALIAS} moved from v0 to v2" in moved.err
    assert _holder(registry) == ["v2"]  # taken from v0 by the server, as W&B does
    assert [m[:3] for m in registry.alias_moves] == [("llama-sft", ALIAS, "add")]
    ((_, metadata),) = registry.metadata_updates
    (promotion,) = json.loads(metadata)["eval_framework_promotions"]
    assert promotion["from"] == "v0"
    assert promotion["to"] == "v2"
    assert promotion["p_value"] < 1e-10
    assert promotion["test"] == "mcnemar_exact"
    (entry,) = _ledger(bundles["v2"])
    assert entry["status"] == "moved"
    assert entry["metadata"] == "written"
    assert entry["p_value"] == promotion["p_value"]

    again = cli(*args)  # v2 holds it now: nothing beats it
    assert again.code == 0, again.err
    assert f"promotion: {ALIAS} stays on v2: no version beats it" in again.err
    assert len(registry.alias_moves) == 1
    assert len(_ledger(bundles["v2"])) == 1


def test_a_refused_metadata_write_after_the_move_is_said_and_kept_in_the_ledger(
    cli, registry, evaluated, tmp_path
):
    out = tmp_path / "out"
    bundles = _registry_bundles(evaluated, out)
    members = registry.collections[("acme-org", "wandb-registry-model", "llama-sft")].members
    registry.refuse_updates.add(members[2][0].id)
    result = cli("compare", "wandb-registry-model/llama-sft", "--output-dir", out, "--promote", ALIAS,
                 "--when", RULE)  # fmt: skip
    assert result.code == 6
    assert (
        "best-letters moved to v2, but its evidence could not be written to the version's metadata"
        in result.err
    )
    assert _holder(registry) == ["v2"]
    (entry,) = _ledger(bundles["v2"])
    assert entry["metadata"].startswith("not written")


def test_a_registry_that_refuses_the_move_changes_nothing(cli, registry, evaluated, tmp_path):
    out = tmp_path / "out"
    bundles = _registry_bundles(evaluated, out)
    registry.server.per_operation["AddAliases"] = "500"
    result = cli("compare", "wandb-registry-model/llama-sft", "--output-dir", out, "--promote", ALIAS,
                 "--when", RULE)  # fmt: skip
    assert result.code == 6
    assert result.err.strip().splitlines()[-1].startswith("error: moving alias 'best-letters' to ")
    assert _holder(registry) == ["v0"]
    assert not _ledger(bundles["v2"])
