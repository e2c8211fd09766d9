"""eval_framework: registry-native LLM evaluation with resumable results bundles."""

from eval_framework.config import EvalConfig
from eval_framework.errors import EvalFrameworkError
from eval_framework.models.base import (
    BaseLLM,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from eval_framework.runner import EvalOutcome, evaluate
from eval_framework.sinks.hf_hub import HfUploadOptions, upload_bundle
from eval_framework.sinks.publish import PublishOptions, publish
from eval_framework.sinks.wandb_sink import log_bundle, log_to_training_run
from eval_framework.sinks.wandb_spec import WandbOptions
from eval_framework.version import __version__

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
    "evaluate",
    "log_bundle",
    "log_to_training_run",
    "publish",
    "upload_bundle",
]
