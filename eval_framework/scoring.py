"""From a model's raw outputs to sample rows, and back: what a row must say given its raw outputs.

A row is derived from the model's raw outputs (log-likelihoods, or a generation) and the sample
(id, prompt, few-shot examples, target, choices). Scoring builds rows that way; the resume check
builds them again from a stored row's raw outputs and compares, so a row whose prediction, scores,
target or choices were edited, or that belongs to another sample, is never counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eval_framework import cleanup
from eval_framework.bundle_schema import SCHEMA_VERSION
from eval_framework.errors import EvalFrameworkError, ModelError, brief
from eval_framework.metrics import score_multiple_choice
from eval_framework.models.base import GenerationRequest, LoglikelihoodRequest
from eval_framework.tasks.base import Task
from eval_framework.tasks.fewshot import PreparedSample

#: Rounding in a model's own arithmetic can give a log-probability a hair above 0; more is a bug.
POSITIVE_TOLERANCE = 1e-4

RESUME_ADVICE = "finished samples are saved, rerun the same command to resume"


@contextmanager
def model_call(task: Task, method: str) -> Iterator[None]:
    """Model failures become one clear error; rows already streamed stay for the resume."""
    try:
        yield
    except NotImplementedError as exc:
        why = brief(exc) if str(exc).strip() else "it is not implemented"
        raise ModelError(
            f"{task.name} needs a model with {method}(): {why}; use a model that has it"
        ) from exc
    except EvalFrameworkError:
        raise
    except SystemExit as exc:
        if cleanup.stopping.is_set():  # our own SIGTERM handling: a stop, not the model's doing
            raise
        raise ModelError(
            f"the model called sys.exit({exc.code}) during {method}(); raise an exception instead. "
            f"{RESUME_ADVICE[0].upper()}{RESUME_ADVICE[1:]}"
        ) from exc
    except Exception as exc:
        raise ModelError(
            f"the model failed during {method}(): {brief(exc, with_type=True)}; {RESUME_ADVICE}"
        ) from exc


def base_row(index: int, prepared: PreparedSample) -> dict[str, Any]:
    s = prepared.sample
    return {
        "schema_version": SCHEMA_VERSION,
        "index": index,
        "id": s.id,
        "subject": s.subject,
        "prompt": s.prompt,
        "fewshot_ids": list(prepared.fewshot_ids),
        "target": s.target,
    }


def mc_row(
    task: Task, index: int, prepared: PreparedSample, logprobs: list[float], is_greedy: list[bool]
) -> dict[str, Any]:
    s = prepared.sample
    scored = score_multiple_choice(logprobs, s.choices, int(s.target))
    return {
        **base_row(index, prepared),
        "choices": list(s.choices),
        "logprobs": logprobs,
        "is_greedy": is_greedy,
        "prediction": scored["prediction"],
        "prediction_norm": scored["prediction_norm"],
        "scores": {m: scored[m] for m in task.metrics},
    }


def generation_row(task: Task, index: int, prepared: PreparedSample, text: str) -> dict[str, Any]:
    extracted, scores = task.score_generation(text, prepared.sample)
    return {
        **base_row(index, prepared),
        "generation": text,
        "extracted": extracted,
        "scores": scores,
    }


def _numpy_scalar(value: Any) -> Any:
    """A NumPy or torch scalar (``np.float32(-1.5)``, ``np.bool_(True)``) as the Python value."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return item()
    return value


def _logprob(result: Any, position: int) -> tuple[float, bool]:
    """One result of ``loglikelihood()``, checked: a finite number at most 0 and a greedy flag."""
    value = _numpy_scalar(getattr(result, "logprob", None))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(
            f"the model's loglikelihood() returned {type(result).__name__} at position {position} "
            f"(logprob {value!r}); fix it to return LoglikelihoodResult(logprob=<float>, is_greedy=<bool>)"
        )
    try:
        value = float(value)
    except OverflowError as exc:  # an int beyond any float
        raise ModelError(
            f"the model's loglikelihood() returned logprob {brief(exc)} at position {position}; fix the "
            "model (return a float)"
        ) from exc
    if math.isnan(value) or value > POSITIVE_TOLERANCE:
        raise ModelError(
            f"the model's loglikelihood() returned logprob {value} at position {position}; fix the model "
            "(a log-probability is a number at most 0)"
        )
    if value == -math.inf:
        raise ModelError(
            f"the model's loglikelihood() returned logprob -inf at position {position} (a probability of "
            "exactly 0, which no score can use); fix the model (masked logits, a float16 underflow?)"
        )
    greedy = _numpy_scalar(getattr(result, "is_greedy", False))
    if not isinstance(greedy, bool):
        raise ModelError(
            f"the model's loglikelihood() returned is_greedy={greedy!r} ({type(greedy).__name__}) at "
            f"position {position}; fix it to return True or False"
        )
    return value, greedy


def _one_per_request(
    outputs: Sequence[Any], requests: Sequence[Any], method: str, plural: str, one: str
) -> None:
    if len(outputs) != len(requests):
        raise ModelError(
            f"the model returned {len(outputs)} {plural} for {len(requests)} requests; fix its "
            f"{method}() to return one {one} per request, in order"
        )


def score_mc(task: Task, model: Any, batch: Sequence[tuple[int, PreparedSample]]) -> list[dict[str, Any]]:
    requests: list[LoglikelihoodRequest] = []
    for _, prepared in batch:
        for ctx, cont in zip(prepared.contexts(task), prepared.continuations(task), strict=True):
            requests.append(LoglikelihoodRequest(ctx, cont))
    with model_call(task, "loglikelihood"):
        results = list(model.loglikelihood(requests))
    _one_per_request(results, requests, "loglikelihood", "loglikelihoods", "result")
    checked = [_logprob(r, i) for i, r in enumerate(results)]
    rows, offset = [], 0
    for index, prepared in batch:
        mine = checked[offset : offset + len(prepared.sample.choices)]
        offset += len(mine)
        rows.append(mc_row(task, index, prepared, [lp for lp, _ in mine], [g for _, g in mine]))
    return rows


def score_generation(
    task: Task, model: Any, batch: Sequence[tuple[int, PreparedSample]], max_tokens: int
) -> list[dict[str, Any]]:
    requests = [GenerationRequest(p.contexts(task)[0], max_tokens, task.stop) for _, p in batch]
    with model_call(task, "generate"):
        outputs = list(model.generate(requests))
    _one_per_request(outputs, requests, "generate", "generations", "string")
    rows = []
    for (index, prepared), text in zip(batch, outputs, strict=True):
        if not isinstance(text, str):
            raise ModelError(
                f"the model's generate() returned {type(text).__name__}, not str; fix it to return strings"
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ModelError(
                f"the model's generate() returned text that is not valid Unicode (a lone surrogate "
                f"\\u{ord(text[exc.start]):04x} at character {exc.start}); fix its decoding (decode whole "
                f"characters, errors='replace'). {RESUME_ADVICE[0].upper()}{RESUME_ADVICE[1:]}"
            ) from exc
        rows.append(generation_row(task, index, prepared, text))
    return rows


def longest_first(
    task: Task, pending: Sequence[tuple[int, PreparedSample]]
) -> list[tuple[int, PreparedSample]]:
    """``pending`` ordered by prompt length, longest first, across the whole evaluation (as
    lm-evaluation-harness orders its requests): each model batch then holds prompts of about one
    length, so little of it is padding, and the first batch shows a memory shortage at once."""
    return sorted(pending, key=lambda item: -max(map(len, item[1].contexts(task))))


def scored_chunks(
    task: Task, model: Any, pending: Sequence[tuple[int, PreparedSample]], batch_size: int, max_tokens: int
) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``pending``, one model batch of samples at a time, longest prompts first: the
    caller writes each chunk as it comes, so a kill loses at most the batch in flight."""
    ordered = longest_first(task, pending)
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        if task.kind == "multiple_choice":
            yield score_mc(task, model, batch)
        else:
            yield score_generation(task, model, batch, max_tokens)


def row_problem(
    task: Task, prepared: Sequence[PreparedSample], row: dict[str, Any], done: dict[int, Any]
) -> str | None:
    """Why a stored row (already valid in shape) is not what this evaluation would have written
    at its index from its own raw outputs, or None."""
    index = row["index"]
    if index >= len(prepared):
        return f"index {index} is beyond the {len(prepared)} samples"
    if index in done:
        return f"a second row for index {index}"
    mc = task.kind == "multiple_choice"
    if mc != (row.get("choices") is not None):
        return f"not a {task.kind.replace('_', ' ')} row"
    sample = prepared[index]
    if mc:
        logprobs, greedy = row["logprobs"], row.get("is_greedy") or [False] * len(row["logprobs"])
        if len(logprobs) != len(sample.sample.choices) or any(math.isnan(v) for v in logprobs):
            return "its log-likelihoods do not fit the sample's choices"
        expected = mc_row(task, index, sample, list(logprobs), list(greedy))
    else:
        expected = generation_row(task, index, sample, row["generation"])
    for name, value in expected.items():
        if name != "schema_version" and row.get(name) != value:  # an older row is as good
            return f"its {name} is not what sample {index} and the row's own model outputs give"
    return None
