"""The model interface: two methods, small enough to implement in a few lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from eval_framework.models.arg_identity import identity_args


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score ``continuation`` given ``context``."""

    context: str
    continuation: str


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float  #: sum of token log-probabilities of the continuation
    is_greedy: bool  #: whether greedy decoding would have produced the continuation
    num_tokens: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    context: str
    max_tokens: int = 256
    stop: tuple[str, ...] = field(default_factory=tuple)


def _declared_by_user(cls: type, *names: str) -> frozenset[str]:
    """Which of ``names`` a user's own class takes in its constructor, unless it also says itself
    which arguments never change outputs. ``name`` is our display name; a class that takes it
    may use it for more (a persona, a variant), so it stays in the key there: a recompute, never
    a wrong reuse."""
    found: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] == "eval_framework" or klass is object:
            break
        if "non_result_args" in vars(klass):
            return frozenset()
        init = vars(klass).get("__init__")
        if init is not None:
            code = getattr(init, "__code__", None)
            params = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount] if code else ()
            found |= {n for n in names if n in params}
    return frozenset(found)


class BaseLLM:
    """Subclass this and implement ``loglikelihood`` and/or ``generate``.

    Constructor keyword arguments come from ``--llm-args``; ``batch_size`` is passed when the
    constructor accepts it (``--batch-size auto`` passes ``"auto"`` only to a class that sets
    ``sizes_own_batches``; others get 8). A model that cannot do one of the two raises NotImplementedError and
    tasks that need it fail with a clear message.
    """

    #: Name used in bundle paths and summaries; defaults to the class name.
    name: str = ""
    #: The constructor takes ``batch_size="auto"`` and finds the largest batch that fits itself.
    sizes_own_batches: ClassVar[bool] = False
    #: --llm-args that never change outputs, kept out of the result identity.
    non_result_args: ClassVar[frozenset[str]] = frozenset(
        {"batch_size", "device", "timeout", "max_retries", "api_key", "name", "artifact_dir"}
    )

    @classmethod
    def validate_args(cls, llm_args: dict[str, Any]) -> None:
        """Check argument values that types cannot (a known dtype, an existing version) before
        anything loads; raise ConfigError naming the argument. ``llm_args`` are already type-checked
        against the constructor."""

    @classmethod
    def result_identity(cls, llm_args: dict[str, Any]) -> dict[str, Any]:
        """What identifies this model's outputs, computed before loading it (so a finished
        evaluation is recognised without loading weights)."""
        skip = cls.non_result_args - _declared_by_user(cls, "name")
        args = {k: v for k, v in llm_args.items() if k not in skip}
        return {"class": cls.__qualname__, "args": identity_args(cls, args)}

    @classmethod
    def display_name_for(cls, llm_args: dict[str, Any]) -> str:
        return str(llm_args.get("name") or cls.name or cls.__name__)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        raise NotImplementedError(f"{type(self).__name__} does not implement loglikelihood")

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} does not implement generate")

    def describe(self) -> dict[str, Any]:
        """Extra details for metadata (device, dtype, ...); not part of identity."""
        return {}


def apply_stop(text: str, stop: Sequence[str]) -> str:
    """Cut generated text at the first stop sequence."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


__all__ = [
    "BaseLLM",
    "GenerationRequest",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "apply_stop",
]
