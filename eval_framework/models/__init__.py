"""Model backends and the small interface every model implements."""

from eval_framework.models.base import (
    BaseLLM,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from eval_framework.models.loading import BUILTIN_BACKENDS, find_model_class, load_model

__all__ = [
    "BUILTIN_BACKENDS",
    "BaseLLM",
    "GenerationRequest",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "find_model_class",
    "load_model",
]
