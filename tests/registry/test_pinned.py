"""A registry checkpoint is chosen once per evaluation, by the pipeline: the identity and the
weights are the same version, and any model class taking ``checkpoint`` can evaluate one."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from eval_framework.config import EvalConfig
from eval_framework.eval_plan import make_plan
from eval_framework.model_plan import build_model
from tests.registry.test_resolver import _register_shipped

USER_MODELS = Path(__file__).parents[1] / "fixtures" / "user_models.py"
LETTERS = ("--task-name", "tiny-letters", "--num-samples", "8")


def test_the_reference_is_looked_up_once_per_evaluation(cli, fake_wandb, tmp_path):
    _register_shipped(fake_wandb)
    result = cli("--checkpoint", "tiny:prod", *LETTERS, "--output-dir", tmp_path / "out")
    assert result.code == 0, result.err
    # once for the '-local' twin, once for the reference: not again to fetch what was chosen
    assert fake_wandb.lookups == ["tiny-local:prod", "tiny:prod"], fake_wandb.lookups


def test_an_alias_that_moves_after_planning_does_not_change_the_weights(fake_wandb, tmp_path):
    shipped = _register_shipped(fake_wandb)  # v0 at 'prod'
    config = EvalConfig(llm_name="hf", task_name="tiny-letters", num_samples=8, output_dir=tmp_path / "out",
                        llm_args={"artifact_name": "tiny:prod", "device": "cpu"})  # fmt: skip
    plan = make_plan(config)
    _register_shipped(fake_wandb, version="v1")  # 'prod' now points at another checkpoint
    with contextlib.ExitStack() as stack:
        model, details = build_model(plan.model, 8, stack)
        assert details is not None
        assert details["qualified_name"] == "acme-org/wandb-registry-model/tiny:v0"
        assert plan.identity["model"]["artifact"]["qualified_name"] == details["qualified_name"]
        loaded = Path(model.checkpoint)
        assert (loaded / "model.safetensors").read_bytes() == shipped["hf/model.safetensors"]


def test_any_model_class_taking_checkpoint_evaluates_a_registry_checkpoint(cli, fake_wandb, tmp_path):
    _register_shipped(fake_wandb)
    result = cli("--models", USER_MODELS, "--llm-name", "CheckpointHashLLM", "--checkpoint", "tiny:prod",
                 *LETTERS, "--output-dir", tmp_path / "out")  # fmt: skip
    assert result.code == 0, result.err
    (bundle,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    meta = json.loads((bundle / "metadata.json").read_text())
    registry = meta["model"]["details"]["registry_checkpoint"]
    assert registry["qualified_name"] == meta["model"]["identity"]["artifact"]["qualified_name"]
    assert meta["model"]["identity"]["class"] == "CheckpointHashLLM"
    assert not Path(registry["destination"]).exists()  # the temporary download ended with the evaluation


def test_a_class_that_cannot_take_a_checkpoint_is_told_before_any_lookup(cli, fake_wandb, tmp_path):
    _register_shipped(fake_wandb)
    result = cli("--llm-name", "embedded", "--checkpoint", "tiny:prod", *LETTERS, "--output-dir", tmp_path)
    assert result.code == 2, result.err
    assert "--checkpoint cannot be used with --llm-name embedded" in result.err, result.err
    assert fake_wandb.lookups == []
