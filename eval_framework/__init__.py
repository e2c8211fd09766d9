"""eval_framework: registry-native LLM evaluation with resumable results bundles.

The public names are imported on first use, so that the command starts (and answers Ctrl-C)
before the heavier modules are loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> module that defines it
_EXPORTS = {
    "__version__": "eval_framework.version",
    "EvalConfig": "eval_framework.config",
    "EvalFrameworkError": "eval_framework.errors",
    "BaseLLM": "eval_framework.models.base",
    "GenerationRequest": "eval_framework.models.base",
    "LoglikelihoodRequest": "eval_framework.models.base",
    "LoglikelihoodResult": "eval_framework.models.base",
    "EvalOutcome": "eval_framework.runner",
    "evaluate": "eval_framework.runner",
    "HfUploadOptions": "eval_framework.sinks.hf_hub",
    "upload_bundle": "eval_framework.sinks.hf_hub",
    "PublishOptions": "eval_framework.sinks.publish",
    "publish": "eval_framework.sinks.publish",
    "log_bundle": "eval_framework.sinks.wandb_sink",
    "log_to_training_run": "eval_framework.sinks.wandb_live",
    "WandbOptions": "eval_framework.sinks.wandb_spec",
    "command_mode": "eval_framework.cleanup",
    "export_results": "eval_framework.exporting",
}

if TYPE_CHECKING:
    from eval_framework.cleanup import command_mode
    from eval_framework.config import EvalConfig
    from eval_framework.errors import EvalFrameworkError
    from eval_framework.exporting import export_results
    from eval_framework.models.base import (
        BaseLLM,
        GenerationRequest,
        LoglikelihoodRequest,
        LoglikelihoodResult,
    )
    from eval_framework.runner import EvalOutcome, evaluate
    from eval_framework.sinks.hf_hub import HfUploadOptions, upload_bundle
    from eval_framework.sinks.publish import PublishOptions, publish
    from eval_framework.sinks.wandb_live import log_to_training_run
    from eval_framework.sinks.wandb_sink import log_bundle
    from eval_framework.sinks.wandb_spec import WandbOptions
    from eval_framework.version import __version__


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eval_framework' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BaseLLM",
    "EvalConfig",
    "EvalFrameworkError",
    "EvalOutcome",
    "GenerationRequest",
    "HfUploadOptions",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "PublishOptions",
    "WandbOptions",
    "__version__",
    "command_mode",
    "evaluate",
    "export_results",
    "log_bundle",
    "log_to_training_run",
    "publish",
    "upload_bundle",
]
