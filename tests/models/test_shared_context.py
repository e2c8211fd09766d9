"""Parity: every batching path of the HF backend's log-likelihoods against a direct forward pass
of each request alone (no padding, no cache), on a model built here."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from eval_framework.models import GenerationRequest, LoglikelihoodRequest
from eval_framework.models.huggingface import HuggingFaceLLM
from eval_framework.models.shared_context import cache_argument, shared_prefix

WORDS = ("planet", "moon", " sun", "comet", "river", "Zürich", "温度", "CO₂", "stone", "\n\n", "A.", " B")


def _requests(seed: int, fewshot: str = "") -> list[LoglikelihoodRequest]:
    """Questions of varied context lengths, each with 4 choices: multi-token endings of varied
    lengths, single-token letters, an ending repeated, a choice that is a prefix of another, an
    empty context, and contexts ending in whitespace (moved into the continuation). ``fewshot``
    comes before every question (the same examples for all, as MMLU's)."""
    rng = random.Random(seed)
    out: list[LoglikelihoodRequest] = []
    for q in range(7):
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))
        context = fewshot + question + (" " if q % 3 == 0 else "")
        if q % 2:
            choices = [" A", " B", " C", " D"]
        else:
            choices = [" " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9))) for _ in range(3)]
            choices.append(choices[0])  # the same continuation twice
        out += [LoglikelihoodRequest(context, c) for c in choices]
    out += [LoglikelihoodRequest("", " moon river"), LoglikelihoodRequest(fewshot + "planet", " moon")]
    out.append(LoglikelihoodRequest(fewshot + "planet", " moon river stone"))  # a longer one sharing a prefix
    return out


def _direct(llm: HuggingFaceLLM, model, req: LoglikelihoodRequest) -> tuple[float, bool]:
    ctx, cont = llm._encode_pair(req.context, req.continuation)
    tokens = (ctx + cont)[-(llm.max_length + 1) :]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([tokens[:-1]])).logits[0].float(), -1)
    span = logprobs[len(tokens) - 1 - len(cont) :]
    target = torch.tensor(cont)
    return float(span.gather(-1, target.unsqueeze(-1)).sum()), bool((span.argmax(-1) == target).all())


FEWSHOT = " ".join(WORDS * 4) + "\n\n"  # tokens enough to be run once for the batch


@pytest.mark.parametrize("fewshot", ["", FEWSHOT])
@pytest.mark.parametrize("batch_size", [1, 3, 8, 64])
@pytest.mark.parametrize("max_length", [None, 24])  # 24: some requests are cut, a full pass each
def test_loglikelihoods_equal_a_direct_forward_pass(bos_llama_dir, batch_size, max_length, fewshot):
    llm = HuggingFaceLLM(
        str(bos_llama_dir), dtype="float32", device="cpu", batch_size=batch_size, max_length=max_length
    )
    assert cache_argument(llm.model) is not None  # the shared-context path is the one tested
    model = AutoModelForCausalLM.from_pretrained(bos_llama_dir, dtype=torch.float32).eval()
    requests = _requests(seed=batch_size, fewshot=fewshot)
    results = llm.loglikelihood(requests)
    assert not llm._cache_not_shared  # no fallback to full passes happened
    assert len(results) == len(requests)
    for req, res in zip(requests, results, strict=True):
        expected, greedy = _direct(llm, model, req)
        assert res.logprob == pytest.approx(expected, abs=1e-4), req
        assert res.is_greedy == greedy, req
        assert res.num_tokens == len(llm._encode_pair(req.context, req.continuation)[1])


def test_a_model_without_a_cache_is_scored_one_full_pass_per_request(bos_llama_dir):
    """A remote-code model whose forward takes only input ids gets the full pass, same numbers."""
    llm = HuggingFaceLLM(str(bos_llama_dir), dtype="float32", device="cpu", batch_size=4)
    reference = llm.loglikelihood(_requests(seed=5))
    inner = llm.model

    class IdsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids=input_ids)

    llm.model = IdsOnly()
    assert cache_argument(llm.model) is None
    plain = llm.loglikelihood(_requests(seed=5))
    assert [r.logprob for r in plain] == pytest.approx([r.logprob for r in reference], abs=1e-4)
    assert [r.is_greedy for r in plain] == [r.is_greedy for r in reference]


@pytest.mark.parametrize("fewshot", ["", FEWSHOT])
def test_batched_generation_equals_each_prompt_alone(bos_llama_dir, fewshot):
    """Left-padded batches, and batches whose prompts share their few-shot examples (run once as a
    cache), generate what each prompt generates alone."""
    rng = random.Random(3)
    requests = [
        GenerationRequest(
            fewshot + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))), 24, ("\n\n",)
        )
        for _ in range(6)
    ]
    alone = HuggingFaceLLM(str(bos_llama_dir), dtype="float32", device="cpu", batch_size=1)
    batched = HuggingFaceLLM(str(bos_llama_dir), dtype="float32", device="cpu", batch_size=4)
    prompts = [batched._encode_context(r.context) for r in requests]
    assert (shared_prefix(prompts) > 0) == bool(fewshot)  # the path under test
    expected = alone.generate(requests)
    assert sum(len(text) for text in expected) > 50  # text was generated, not stopped at once
    assert batched.generate(requests) == expected
    assert not batched._cache_not_shared


def test_a_cache_that_cannot_be_shared_falls_back_to_full_passes_and_says_so(bos_llama_dir, caplog):
    """A remote-code model that takes a cache but returns it in a form that cannot be copied
    between rows (here: the legacy tuple of tuples) is scored with full passes, same numbers."""
    llm = HuggingFaceLLM(str(bos_llama_dir), dtype="float32", device="cpu", batch_size=4)
    requests = _requests(seed=7, fewshot=FEWSHOT)
    reference = llm.loglikelihood(requests)
    inner = llm.model

    class TupleCache(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=None):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
            out.cache = tuple((layer.keys, layer.values) for layer in (cache or []))
            return out

    llm.model = TupleCache()
    with caplog.at_level("WARNING"):
        plain = llm.loglikelihood(requests)
        again = llm.loglikelihood(requests)
    assert llm._cache_not_shared
    assert [r.logprob for r in plain] == pytest.approx([r.logprob for r in reference], abs=1e-4)
    assert [r.logprob for r in again] == pytest.approx([r.logprob for r in reference], abs=1e-4)
    said = [r.getMessage() for r in caplog.records if "cannot be shared" in r.getMessage()]
    assert len(said) == 1  # said once
    assert "scoring one full pass per request instead (slower, the same scores)" in said[0]
