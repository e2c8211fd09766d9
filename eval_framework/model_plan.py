"""The model side of an evaluation's plan: which class, its checked arguments, its identity and
display name, and the registry checkpoint it evaluates (chosen once, here, before anything runs),
then the model built from that plan."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from eval_framework.config import EvalConfig
from eval_framework.errors import ConfigError
from eval_framework.models.auto_batch import BatchSizeSetting
from eval_framework.models.base import BaseLLM
from eval_framework.models.loading import check_llm_args, instantiate, model_identity
from eval_framework.registry.pinned import PinnedCheckpoint, split_registry_args

#: Stands in for the checkpoint directory while the arguments are checked (it is fetched later).
_TO_BE_FETCHED = "<registry checkpoint>"
#: Identity entries that describe a checkpoint directory or hub id; a registry checkpoint is
#: identified by its version and digest instead.
_LOCATION_KEYS = ("checkpoint", "checkpoint_fingerprint", "hub_commit")


@dataclass(frozen=True)
class ModelPlan:
    cls: type
    llm_args: dict[str, Any]  #: checked against the constructor, values converted to its types
    identity: dict[str, Any]
    display: str
    checkpoint: PinnedCheckpoint | None  #: the registry version evaluated, when there is one


@dataclass(frozen=True)
class ModelArgs:
    """--llm-args checked against the class (before anything slow), the registry ones apart."""

    llm_args: dict[str, Any]
    registry_args: dict[str, Any]


def check_model_args(config: EvalConfig, model_cls: type) -> ModelArgs:
    registry_args, own_args = split_registry_args(config.llm_args)
    if not registry_args.get("artifact_name"):
        if registry_args:
            raise ConfigError(
                f"--llm-args {', '.join(sorted(registry_args))} only apply to a registry checkpoint; "
                "pass --checkpoint <registry ref> as well, or drop them"
            )
        return ModelArgs(check_llm_args(model_cls, own_args), {})
    if "checkpoint" in own_args:
        raise ConfigError(
            "--checkpoint (a registry reference) and --llm-args checkpoint=... both name the weights; "
            "pass one of them"
        )
    try:
        llm_args = check_llm_args(model_cls, {**own_args, "checkpoint": _TO_BE_FETCHED})
    except ConfigError as exc:
        raise ConfigError(
            f"--checkpoint cannot be used with --llm-name {config.llm_name} (the checkpoint directory is "
            f"passed as checkpoint=...): {exc}"
        ) from exc
    llm_args.pop("checkpoint")
    return ModelArgs(llm_args, registry_args)


def plan_model(model_cls: type, args: ModelArgs) -> ModelPlan:
    """Identity and display name; a registry checkpoint is looked up here, once."""
    llm_args = args.llm_args
    if not args.registry_args:
        return ModelPlan(
            model_cls, llm_args, model_identity(model_cls, llm_args), _display(model_cls, llm_args), None
        )
    pinned = PinnedCheckpoint.choose(args.registry_args)
    # The class's identity without a checkpoint location (an explicit none: no default, no hub
    # lookup); the registry version and digest stand for the weights.
    identity = model_identity(model_cls, {**llm_args, "checkpoint": None})
    for key in _LOCATION_KEYS:
        identity.pop(key, None)
    identity["args"] = {k: v for k, v in identity.get("args", {}).items() if k != "checkpoint"}
    if pinned.subdir:
        identity["args"]["checkpoint_subdir"] = pinned.subdir  # which checkpoint of the artifact
    identity["artifact"] = pinned.identity
    display = _display(model_cls, {**llm_args, "checkpoint": pinned.display_name})
    return ModelPlan(model_cls, llm_args, identity, display, pinned)


def _display(model_cls: type, llm_args: dict[str, Any]) -> str:
    if hasattr(model_cls, "display_name_for"):
        return str(model_cls.display_name_for(llm_args))
    return model_cls.__name__


def build_model(
    plan: ModelPlan, batch_size: BatchSizeSetting, stack: contextlib.ExitStack
) -> tuple[BaseLLM, dict[str, Any] | None]:
    """The model (any class with ``BaseLLM``'s methods, subclass or not), and the registry
    checkpoint's details for the bundle (None without one). The checkpoint's temporary files live
    until ``stack`` closes."""
    if plan.checkpoint is None:
        return instantiate(plan.cls, plan.llm_args, batch_size), None
    resolved = plan.checkpoint.fetch(stack)
    model = instantiate(plan.cls, {**plan.llm_args, "checkpoint": str(resolved.path)}, batch_size)
    return model, resolved.as_dict()
