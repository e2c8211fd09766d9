"""--batch-size auto: the largest batch that fits, found by halving on out-of-memory, with the same
scores as any fixed size; a fixed size that does not fit says what to do."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import pytest
import torch

from eval_framework.errors import ConfigError, ModelError
from eval_framework.models import GenerationRequest
from eval_framework.models.auto_batch import AUTO_START, BatchSize, parse_batch_size
from eval_framework.models.huggingface import HuggingFaceLLM
from tests.models.test_shared_context import FEWSHOT, WORDS, _requests


def _on_a_small_gpu(llm: HuggingFaceLLM, budget: int) -> list[tuple[int, int]]:
    """Make ``llm``'s model run out of memory, as CUDA does, on a pass of more than ``budget``
    tokens (rows x width); the shapes of the passes that ran are returned (appended as they run)."""
    ran: list[tuple[int, int]] = []
    base = type(llm.model)

    class SmallGpu(base):  # type: ignore[misc, valid-type]
        @functools.wraps(base.forward)  # the same signature: the cache is still found and shared
        def forward(self, input_ids=None, **kwargs):
            rows, width = input_ids.shape
            if rows * width > budget:
                raise torch.cuda.OutOfMemoryError(
                    f"CUDA out of memory. Tried to allocate {rows * width} tokens' activations"
                )
            ran.append((rows, width))
            return super().forward(input_ids=input_ids, **kwargs)

    llm.model.__class__ = SmallGpu
    return ran


def _hf(bos_llama_dir: Path, batch_size: int | str) -> HuggingFaceLLM:
    return HuggingFaceLLM(str(bos_llama_dir), dtype="float32", device="cpu", batch_size=batch_size)


@pytest.mark.parametrize("fewshot", ["", FEWSHOT])
def test_auto_finds_a_batch_that_fits_and_scores_as_a_fixed_size(bos_llama_dir, fewshot, caplog):
    requests = _requests(seed=11, fewshot=fewshot)
    expected = _hf(bos_llama_dir, 1).loglikelihood(requests)
    llm = _hf(bos_llama_dir, "auto")
    assert llm._batches.size == AUTO_START
    ran = _on_a_small_gpu(llm, budget=250)
    with caplog.at_level(logging.INFO, logger="eval_framework.models.auto_batch"):
        results = llm.loglikelihood(requests)
    assert [r.logprob for r in results] == pytest.approx([r.logprob for r in expected], abs=1e-4)
    assert [r.is_greedy for r in results] == [r.is_greedy for r in expected]
    assert 1 < llm._batches.size < AUTO_START  # shrunk, not down to one
    assert all(rows * width <= 250 for rows, width in ran)
    assert any(rows > 1 for rows, _ in ran)  # batches, not one request at a time
    shrinks = [r.message for r in caplog.records if "ran out of memory" in r.message]
    assert shrinks  # said in the log
    # the first (longest) batch settled the size: later, shorter batches did not run out again
    assert len(shrinks) <= 6


def test_auto_generation_retries_a_batch_that_ran_out_and_generates_the_same(bos_llama_dir):
    requests = [GenerationRequest(" ".join(WORDS[i : 2 * i + 3]), 12, ("\n\n",)) for i in range(6)]
    expected = _hf(bos_llama_dir, 1).generate(requests)
    assert sum(len(text) for text in expected) > 20  # text was generated
    llm = _hf(bos_llama_dir, "auto")
    ran = _on_a_small_gpu(llm, budget=60)
    assert llm.generate(requests) == expected
    assert 1 < llm._batches.size < AUTO_START
    assert max(rows for rows, _ in ran) > 1


def test_a_fixed_batch_that_does_not_fit_says_what_to_pass(bos_llama_dir):
    llm = _hf(bos_llama_dir, 8)
    _on_a_small_gpu(llm, budget=60)
    says = r"memory on a batch of \d+ \(\d+ tokens\); pass a smaller --batch-size, or --batch-size auto"
    with pytest.raises(ModelError, match=says):
        llm.loglikelihood(_requests(seed=2))


def test_auto_says_when_one_request_alone_does_not_fit(bos_llama_dir):
    llm = _hf(bos_llama_dir, "auto")
    _on_a_small_gpu(llm, budget=3)
    with pytest.raises(
        ModelError, match=r"one request alone does not fit: use a smaller model, a lower precision"
    ):
        llm.loglikelihood(_requests(seed=2))
    assert llm._batches.size == 1


def test_batches_never_skips_or_repeats_an_item():
    class Oom(Exception):
        pass

    fake_torch = type(
        "T", (), {"OutOfMemoryError": Oom, "cuda": type("C", (), {"is_available": staticmethod(bool)})}
    )
    seen: list[int] = []

    def step(batch):
        if len(batch) > 5:
            raise Oom
        seen.extend(batch)
        return len(batch)

    sizes = BatchSize("auto", fake_torch)
    assert list(sizes.batches(list(range(23)), step, len)) == [5] * 4 + [3]
    assert seen == list(range(23))
    assert sizes.size == 5  # halved from the batch that failed: 23 items -> 11 -> 5


@pytest.mark.parametrize(
    ("value", "parsed"), [("auto", "auto"), ("AUTO", "auto"), ("16", 16), (4, 4), (None, None)]
)
def test_parse_batch_size(value, parsed):
    assert parse_batch_size(value) == parsed


@pytest.mark.parametrize("value", ["0", "-2", "abc", "1.5", 0, True])
def test_parse_batch_size_refuses_what_is_not_a_size(value):
    with pytest.raises(
        ConfigError, match=r"is neither a whole number of samples \(1 or more\) nor 'auto'; pass e\.g\."
    ):
        parse_batch_size(value)


def test_batch_size_auto_on_the_command_line_is_the_same_evaluation(cli, tmp_path):
    out = tmp_path / "out"
    base = [
        "--llm-name",
        "embedded",
        "--task-name",
        "tiny-letters",
        "--num-samples",
        "6",
        "--output-dir",
        out,
    ]
    first = cli(*base, "--batch-size", "auto")
    assert first.code == 0, first.err
    (bundle,) = [p for p in out.iterdir() if (p / "metadata.json").exists()]
    config = json.loads((bundle / "metadata.json").read_text())["config"]
    assert config["batch_size"] == "auto"
    again = cli(*base, "--batch-size", "3")  # batch size is not part of the identity: already done
    assert again.code == 0, again.err
    assert [p for p in out.iterdir() if (p / "metadata.json").exists()] == [bundle]
    assert len((bundle / "samples.jsonl").read_text().splitlines()) == 6


@pytest.mark.parametrize("value", ["abc", "0"])
def test_a_bad_batch_size_on_the_command_line_is_one_line_exit_2(cli, tmp_path, value):
    result = cli("--llm-name", "embedded", "--task-name", "tiny-letters", "--batch-size", value)
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"error: --batch-size {value} is neither a whole number of samples (1 or more) nor 'auto'; pass e.g. "
        "--batch-size 16, or --batch-size auto to use the largest batch that fits in memory"
    ]


def test_a_model_that_does_not_size_its_batches_gets_a_fixed_size_and_says_so(cli, tmp_path, caplog):
    models = tmp_path / "models.py"
    models.write_text(
        "from eval_framework.models import BaseLLM, LoglikelihoodResult\n"
        "SEEN = []\n"
        "class Fixed(BaseLLM):\n"
        "    def __init__(self, batch_size: int = 1) -> None:\n"
        "        assert isinstance(batch_size, int), batch_size\n"
        "        self.batch_size = batch_size\n"
        "    def loglikelihood(self, requests):\n"
        "        return [LoglikelihoodResult(-float(len(r.continuation)), False) for r in requests]\n"
    )
    with caplog.at_level(logging.WARNING):
        result = cli(
            "--models", models, "--llm-name", "Fixed", "--task-name", "tiny-letters", "--num-samples", "2",
            "--batch-size", "auto", "--output-dir", tmp_path / "out",
        )  # fmt: skip
    assert result.code == 0, result.err
    assert "Fixed does not size its own batches; --batch-size auto means 8 for it" in caplog.text
