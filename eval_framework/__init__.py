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
from eval_framework.version import __version__

__all__ = [
    "BaseLLM",
    "EvalConfig",
    "EvalFrameworkError",
    "EvalOutcome",
    "GenerationRequest",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "__version__",
    "evaluate",
]
