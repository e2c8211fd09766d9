# ruff: noqa: F811  (pytest fixtures imported from other test modules)
"""--promote on sweep and watch: the shipped checkpoints as versions of a registry collection in
the fake W&B server, the alias moved through the real SDK once the sweep (or each watched
version) has finished, and refused up front where it cannot apply."""

from __future__ import annotations

import json

import pytest

from tests.registry.conftest import fake_wandb, s3, s3_server, wandb_http  # noqa: F401
from tests.registry.test_resolver import _register_shipped

ALIAS = "best"
RULE = ("--promote", ALIAS, "--when", "tiny-letters/acc improves")
#: 40 samples: v0 (untrained) near 25 %, v1 about 60 %, v2 above 95 % (each step significant)
LETTERS = ("--task-name", "tiny-letters", "--num-fewshot", "3", "--num-samples", "40", "--output-dir", "out")


@pytest.fixture
def collection(fake_wandb):
    """tiny v0..v2 (the shipped checkpoints), the alias on v0."""
    for shipped in ("v0", "v1", "v2"):
        _register_shipped(fake_wandb, "tiny", shipped)
    fake_wandb.collections[("acme-org", "wandb-registry-model", "tiny")].members[0][1].add(ALIAS)
    return fake_wandb


def _holder(fake) -> list[str]:
    members = fake.collections[("acme-org", "wandb-registry-model", "tiny")].members
    return [f"v{i}" for i, (_, aliases) in enumerate(members) if ALIAS in aliases]


def test_a_sweep_promotes_the_best_version_once_it_has_finished(cli, collection, tmp_path):
    result = cli("sweep", "tiny", *LETTERS, *RULE)
    assert result.code == 0, result.err
    assert f"promotion: {ALIAS} moved from v0 to v2 (v2 beats v0 on tiny-letters/acc: +" in result.err
    assert _holder(collection) == ["v2"]
    (_, metadata), = collection.metadata_updates  # fmt: skip
    assert json.loads(metadata)["eval_framework_promotions"][0]["from"] == "v0"


def test_a_dry_run_sweep_moves_nothing(cli, collection, tmp_path):
    result = cli("sweep", "tiny", *LETTERS, *RULE, "--dry-run")
    assert result.code == 0, result.err
    assert f"promotion: {ALIAS} would move from v0 to v2" in result.err
    assert _holder(collection) == ["v0"]
    assert collection.alias_moves == []


def test_a_watch_promotes_each_version_that_beats_the_holder(cli, collection, tmp_path):
    result = cli("watch", "tiny", *LETTERS, *RULE, "--interval", "0.2", "--until", "v2")
    assert result.code == 0, result.err
    said = [line for line in result.err.splitlines() if line.startswith("promotion: ")]
    assert said[0].startswith(f"promotion: {ALIAS} stays on v0: no other version evaluated it")
    assert said[1].startswith(f"promotion: {ALIAS} moved from v0 to v1")
    assert said[2].startswith(f"promotion: {ALIAS} moved from v1 to v2")
    assert _holder(collection) == ["v2"]
    assert [m[2] for m in collection.alias_moves] == ["add", "add"]


OUT = ("--num-samples", "4", "--output-dir", "out")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("sweep", "runs/step-*", "--task-name", "tiny-letters"),
         "--promote moves a registry alias, but runs/step-* names local checkpoint folders"),
        (("watch", "runs/step-*", "--task-name", "tiny-letters"),
         "--promote moves a registry alias, but runs/step-* names local checkpoint folders"),
        (("sweep", "tiny", "--task-name", "tiny-letters-gen"),
         "--when names task tiny-letters, which this command does not evaluate (tiny-letters-gen)"),
    ],
)  # fmt: skip
def test_a_rule_that_cannot_apply_is_refused_before_any_work(cli, tmp_path, args, says):
    result = cli(*args, *OUT, *RULE)
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"error: {says}")
    assert not (tmp_path / "out").exists()
