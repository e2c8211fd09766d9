from __future__ import annotations

import pytest

from eval_framework.errors import ConfigError
from eval_framework.registry.reference import CheckpointRef, parse_reference


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("wandb-registry-model/llama-sft:v7", CheckpointRef(None, "wandb-registry-model", "llama-sft", "v7")),
        (
            "acme/wandb-registry-model/llama-sft:prod",
            CheckpointRef("acme", "wandb-registry-model", "llama-sft", "prod"),
        ),
        ("team/train-runs/ckpt-step1000:v3", CheckpointRef("team", "train-runs", "ckpt-step1000", "v3")),
        ("llama-sft", CheckpointRef(None, "wandb-registry-model", "llama-sft", "latest")),
        ("llama-sft:best", CheckpointRef(None, "wandb-registry-model", "llama-sft", "best")),
        ("wandb-registry-eval/x.y_z", CheckpointRef(None, "wandb-registry-eval", "x.y_z", "latest")),
    ],
)
def test_accepted_forms(ref, expected):
    assert parse_reference(ref) == expected


def test_properties_and_twin():
    ref = parse_reference("acme/wandb-registry-model/llama-sft:v7")
    assert ref.is_registry
    assert ref.registry == "model"
    assert ref.alias == "v7"
    assert ref.path == "acme/wandb-registry-model/llama-sft:v7"
    assert ref.local_twin().path == "acme/wandb-registry-model/llama-sft-local:v7"
    plain = parse_reference("team/proj/name")
    assert not plain.is_registry
    assert plain.registry is None
    assert plain.path == "team/proj/name:latest"
    assert parse_reference("x", default_registry="wandb-registry-ckpts").project == "wandb-registry-ckpts"


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "a/b/c/d:v1",
        "proj/name:v1",
        "name:",
        "name:a:b",
        "na me",
        "wandb-registry-/x",
        "a//b",
        "x" * 129,
        "org/wandb-registry-model/bad name:v1",
        "name:v/1",
    ],
)
def test_malformed_refused_with_accepted_forms(ref):
    with pytest.raises(ConfigError, match="accepted forms") as info:
        parse_reference(ref)
    assert "wandb-registry-<registry>/<collection>" in str(info.value)
