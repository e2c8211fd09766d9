"""Batch sizes: a fixed one, or ``auto``: the largest that fits, found by trying.

``auto`` starts at ``AUTO_START`` and halves on an out-of-memory error, retrying the same rows, so
no batch is lost or scored twice. Requests come longest first (``scoring.longest_first``), so the
first batch is the largest a task asks for: the size it settles on holds for the rest, and a later,
longer task (several tasks share one model load) halves it again if it must. Every row is scored
alone in its pass (no attention across rows, padding never read), so the size changes no score.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import PlainValidator
from pydantic_core import PydanticKnownError

from eval_framework.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Where ``auto`` starts: lm-evaluation-harness's largest automatic batch size, and the number of
#: samples the runner hands a self-sizing model at a time (one written chunk).
AUTO_START = 64

#: What a model that cannot size its own batches gets for ``--batch-size auto``.
FIXED_FALLBACK = 8

BatchSizeSetting = int | Literal["auto"]


def _checked(value: Any) -> BatchSizeSetting:
    """A configuration file's or hyperparameter's value: a whole number of 1 or more (strict, as
    every number there: ``true`` is not 1, ``"8"`` is not 8) or ``auto``. One error, not one per
    member of the union."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if not isinstance(value, int) or isinstance(value, bool):
        raise PydanticKnownError("int_type")
    if value < 1:
        raise PydanticKnownError("greater_than_equal", {"ge": 1})
    return value


#: The pydantic field type of a batch size setting.
BatchSizeField = Annotated[BatchSizeSetting, PlainValidator(_checked)]


def parse_batch_size(value: str | int | None, source: str = "--batch-size") -> BatchSizeSetting | None:
    """``8`` or ``auto`` (any case) as given on the command line or in a hyperparameter file."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    sep = "=" if source.startswith("--llm-args") else " "
    raise ConfigError(
        f"{source}{sep}{value} is neither a whole number of samples (1 or more) nor 'auto'; pass e.g. "
        f"{source}{sep}16, or {source}{sep}auto to use the largest batch that fits in memory"
    )


def chunk_size(setting: BatchSizeSetting) -> int:
    """Samples the runner scores and writes at a time."""
    return AUTO_START if setting == "auto" else setting


def out_of_memory_errors(torch: Any) -> tuple[type[BaseException], ...]:
    """torch's out-of-memory exceptions: the CUDA one, and the device-neutral one of newer torch."""
    found = [getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)]
    return tuple({e for e in found if isinstance(e, type) and issubclass(e, BaseException)})


class BatchSize:
    """The batch size of one model, fixed or found by trying (see the module docstring)."""

    def __init__(self, setting: BatchSizeSetting, torch: Any) -> None:
        self.auto = setting == "auto"
        self.size = AUTO_START if setting == "auto" else int(setting)
        self._torch = torch
        self._oom = out_of_memory_errors(torch)

    def batches(
        self, items: Sequence[T], step: Callable[[Sequence[T]], R], tokens: Callable[[Sequence[T]], int]
    ) -> Iterator[R]:
        """``step`` over ``items`` a batch at a time; with ``auto``, a batch that runs out of memory
        is retried at half the size (``step`` may write its results as it goes: the retry writes
        the same ones again). ``tokens``: a batch's size in tokens, for the message."""
        start = 0
        while start < len(items):
            batch = items[start : start + self.size]
            try:
                result = step(batch)
            except self._oom as exc:
                self._refuse(exc, len(batch), tokens(batch))
            else:
                start += len(batch)
                yield result
                continue
            # Out of the except block: the error's traceback (and the failed pass's tensors it
            # holds) is gone before the allocator is asked to give the memory back.
            self._release()
            self.size = max(1, min(self.size, len(batch)) // 2)
            log.info("a batch of %d ran out of memory; the batch size is now %d", len(batch), self.size)

    def _refuse(self, exc: BaseException, rows: int, tokens: int) -> None:
        """Out of memory where halving cannot help: a fixed size, or one request alone."""
        if self.auto and self.size > 1:
            return
        where = f"a batch of {rows} ({tokens} tokens)"
        what = (
            "one request alone does not fit: use a smaller model, a lower precision (--llm-args "
            "dtype=bfloat16) or a shorter max_length"
            if self.auto
            else "pass a smaller --batch-size, or --batch-size auto to use the largest that fits"
        )
        raise ModelError(f"the model ran out of memory on {where}; {what}") from exc

    def _release(self) -> None:
        gc.collect()
        cuda = getattr(self._torch, "cuda", None)
        if cuda is not None and cuda.is_available():
            cuda.empty_cache()
