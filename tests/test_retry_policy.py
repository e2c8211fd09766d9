"""The retry policy: what is retried, how often, how long it waits (asked of ``sleep``, never
slept), and what the caller sees when it gives up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eval_framework import retry_policy


class Flaky(Exception):
    """Worth another try."""


class Stalled(Flaky):
    """Worth another try, but only a bounded number of them."""


class Broken(Exception):
    """Not worth another try."""


def failing(*errors: BaseException, result: str = "ok") -> tuple[Callable[[], str], list[BaseException]]:
    """A call that raises ``errors`` in turn, then returns ``result``; the list records the calls."""
    calls: list[BaseException] = []

    def fn() -> str:
        if len(calls) < len(errors):
            calls.append(errors[len(calls)])
            raise calls[-1]
        calls.append(Exception("returned"))
        return result

    return fn, calls


def is_flaky(exc: BaseException) -> bool:
    return isinstance(exc, Flaky)


def run(fn: Callable[[], str], waits: list[float] | None = None, **policy: Any) -> str:
    """``retry_policy.call`` retrying ``Flaky`` (5 attempts, waits up to 30 s unless ``policy``
    says otherwise); the waits it asks for go to ``waits``, untaken."""
    chosen = retry_policy.Policy(is_flaky, **{"attempts": 5, "wait_max": 30.0, **policy})
    return retry_policy.call(fn, chosen, sleep=waits.append if waits is not None else lambda _: None)


def test_transient_errors_are_retried_until_the_call_succeeds():
    fn, calls = failing(Flaky("1"), Flaky("2"))
    assert run(fn) == "ok"
    assert len(calls) == 3


def test_an_error_the_predicate_refuses_is_final_and_raised_as_is():
    error = Broken("no")
    fn, calls = failing(Flaky("1"), error, Flaky("3"))
    with pytest.raises(Broken) as info:
        run(fn)
    assert info.value is error
    assert len(calls) == 2


def test_attempts_bound_the_calls_and_the_last_error_is_re_raised():
    errors = [Flaky(str(i)) for i in range(10)]
    fn, calls = failing(*errors)
    with pytest.raises(Flaky) as info:
        run(fn, attempts=4)
    assert len(calls) == 4
    assert info.value is errors[3]  # the last one, not a tenacity.RetryError wrapping it


def test_one_attempt_means_no_retry():
    fn, calls = failing(Flaky("1"))
    with pytest.raises(Flaky):
        run(fn, attempts=1)
    assert len(calls) == 1


def test_backoff_waits_stay_in_a_window_doubling_from_first_wait_up_to_the_cap():
    waits: list[float] = []
    fn, _ = failing(*[Flaky(str(i)) for i in range(8)])
    with pytest.raises(Flaky):
        run(fn, waits, attempts=8, first_wait=0.5, wait_max=3.0)
    assert len(waits) == 7  # one wait between each pair of the 8 calls
    windows = [min(0.5 * 2**i, 3.0) for i in range(7)]  # 0.5, 1, 2, then capped at 3
    assert all(0 <= wait <= window for wait, window in zip(waits, windows, strict=True)), waits


def test_a_zero_cap_never_waits():
    waits: list[float] = []
    fn, _ = failing(*[Flaky(str(i)) for i in range(4)])
    assert run(fn, waits, wait_max=0.0) == "ok"
    assert waits == [0.0] * 4


def test_a_suggested_wait_is_honoured_but_capped():
    waits: list[float] = []
    suggested = {"soon": 2.0, "in an hour": 3600.0}
    fn, _ = failing(Flaky("soon"), Flaky("in an hour"))
    assert run(fn, waits, wait_max=30.0, suggested_wait=lambda exc: suggested[str(exc)]) == "ok"
    assert waits == [2.0, 30.0]


def test_without_a_suggestion_the_backoff_applies():
    waits: list[float] = []
    fn, _ = failing(Flaky("1"), Flaky("2"))
    assert run(fn, waits, wait_max=0.25, first_wait=0.25, suggested_wait=lambda exc: None) == "ok"
    assert len(waits) == 2
    assert all(0 <= wait <= 0.25 for wait in waits)


def test_a_limited_kind_of_error_ends_the_retries_sooner():
    stalls = [Stalled(str(i)) for i in range(5)]
    fn, calls = failing(*stalls)
    with pytest.raises(Stalled) as info:
        run(fn, attempts=5, limits={Stalled: 2})
    assert len(calls) == 2
    assert info.value is stalls[1]


def test_other_transient_errors_do_not_use_up_a_kinds_limit():
    fn, calls = failing(Flaky("1"), Stalled("a"), Flaky("2"), Flaky("3"))
    assert run(fn, attempts=5, limits={Stalled: 2}) == "ok"
    assert len(calls) == 5


def test_limits_are_counted_per_call():
    """A limit is of one call's retries: a later call starts afresh."""
    for _ in range(2):
        fn, calls = failing(Stalled("a"))
        assert run(fn, limits={Stalled: 2}) == "ok"
        assert len(calls) == 2
