"""What the framework accepts from a model's outputs, and what it refuses as a model error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval_framework import LoglikelihoodResult
from eval_framework.errors import ModelError
from eval_framework.scoring import score_generation, score_mc
from eval_framework.tasks import get_task
from eval_framework.tasks.fewshot import prepare


def _batch(task_name: str, n: int = 2):
    task = get_task(task_name)
    return task, [(i, prepare(task, s, 0, 1)) for i, s in enumerate(task.eval_samples()[:n])]


class Returns:
    def __init__(self, value, greedy=False) -> None:
        self.value, self.greedy = value, greedy

    def loglikelihood(self, requests):
        return [LoglikelihoodResult(self.value, self.greedy) for _ in requests]

    def generate(self, requests):
        return [self.value for _ in requests]


def test_numpy_scalars_are_numbers_and_flags():
    task, batch = _batch("tiny-letters")
    rows = score_mc(task, Returns(np.float32(-1.5), np.bool_(True)), batch)
    assert rows[0]["logprobs"][0] == -1.5
    assert rows[0]["is_greedy"][0] is True


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (-math.inf, "returned logprob -inf at position 0"),
        (0.5, "returned logprob 0.5"),
        (-(10**400), "too large to convert to float at position 0; fix the model"),
        (math.nan, "logprob nan"),
    ],
)
def test_log_probabilities_that_no_score_can_use_are_model_errors(value, says):
    task, batch = _batch("tiny-letters")
    with pytest.raises(ModelError, match=says):
        score_mc(task, Returns(value), batch)


def test_a_generation_with_a_lone_surrogate_is_a_model_error():
    task, batch = _batch("tiny-letters-gen")
    with pytest.raises(ModelError, match=r"not valid Unicode \(a lone surrogate \\ud800 at character 0\)"):
        score_generation(task, Returns("\ud800abc"), batch, 8)
