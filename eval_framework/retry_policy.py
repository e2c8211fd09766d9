"""The one retry policy every network boundary uses (OpenAI-compatible servers, W&B logging and
reachability checks, checkpoint downloads).

A boundary says what is worth another try (its own transient-error predicate, usually built on
``net.classify``) and how far to go (attempts, the cap on one wait); the policy is the same
everywhere: capped exponential backoff with full jitter, so that many workers hitting one
failing server do not retry in step, a server's suggested wait (``Retry-After``) honoured but
capped, and the last error re-raised as it was, so each boundary words its own message.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

T = TypeVar("T")


@dataclass(frozen=True)
class Policy:
    """One boundary's retries. ``transient``: what another try can change. ``attempts``: calls in
    all. The wait before a retry is random below ``first_wait``, a window that doubles per retry up
    to ``wait_max`` (0 in tests: no sleeping). ``suggested_wait`` gives the server's own wait for an
    error, if any; it replaces the backoff but is capped at ``wait_max`` too, so a server cannot
    hold a run for an hour. ``limits`` bounds one kind of error tighter than ``attempts``: its
    ``n``-th occurrence is final (a silent store is worth one fresh connection, not five)."""

    transient: Callable[[BaseException], bool]
    attempts: int
    wait_max: float
    first_wait: float = 1.0
    suggested_wait: Callable[[BaseException], float | None] | None = None
    limits: Mapping[type[BaseException], int] = field(default_factory=dict)


def call(fn: Callable[[], T], policy: Policy, sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()``, called again while it raises an error ``policy.transient`` accepts, at most
    ``policy.attempts`` calls; the last error is re-raised unchanged. ``sleep`` is the clock's,
    replaceable to see the waits without taking them."""
    backoff = wait_random_exponential(multiplier=policy.first_wait, max=policy.wait_max)
    seen: Counter[type[BaseException]] = Counter()

    def worth_retrying(exc: BaseException) -> bool:
        for kind, most in policy.limits.items():
            if isinstance(exc, kind):
                seen[kind] += 1
                if seen[kind] >= most:
                    return False
        return policy.transient(exc)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        suggested = policy.suggested_wait(exc) if policy.suggested_wait and exc is not None else None
        if suggested is not None:
            return min(max(suggested, 0.0), policy.wait_max)
        return float(backoff(state))

    retrying = Retrying(
        retry=retry_if_exception(worth_retrying),
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)
