"""The HF backend against direct forward passes of the same tiny model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval_framework.errors import ConfigError
from eval_framework.models import GenerationRequest, LoglikelihoodRequest
from eval_framework.models.huggingface import HuggingFaceLLM


@pytest.fixture(scope="module")
def llm(tiny_model_dir):
    return HuggingFaceLLM(str(tiny_model_dir), dtype="float32", device="cpu", batch_size=3)


def _direct(model_dir, context: str, continuation: str) -> tuple[float, bool]:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    cont = tok(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), -1)
    total, greedy = 0.0, True
    for i, token in enumerate(cont):
        row = logprobs[len(ctx) + i - 1]
        total += row[token].item()
        greedy = greedy and int(row.argmax()) == token
    return total, greedy


def test_loglikelihood_matches_a_direct_forward_pass(llm, tiny_model_dir):
    requests = [
        LoglikelihoodRequest("copy: abcd ->", " abcd"),
        LoglikelihoodRequest("reverse: wxyz -> zyxw\ncopy: mnop ->", " mnop"),
        LoglikelihoodRequest("copy: ab ->", " x"),
        LoglikelihoodRequest("a", " bcdefghijklmnop"),
    ]
    results = llm.loglikelihood(requests)  # batch_size 3: padding and reordering are exercised
    for req, res in zip(requests, results, strict=True):
        expected, greedy = _direct(tiny_model_dir, req.context, req.continuation)
        assert res.logprob == pytest.approx(expected, abs=1e-4)
        assert res.is_greedy == greedy
        assert res.num_tokens == len(req.continuation)


def test_trailing_context_space_moves_to_the_continuation(llm, tiny_model_dir):
    moved = llm.loglikelihood([LoglikelihoodRequest("copy: abcd -> ", "abcd")])[0]
    expected, _ = _direct(tiny_model_dir, "copy: abcd ->", " abcd")
    assert moved.logprob == pytest.approx(expected, abs=1e-4)


def test_generation_is_greedy_and_stops(llm, tiny_model_dir):
    outs = llm.generate(
        [
            GenerationRequest("copy: abcd ->", max_tokens=6, stop=("\n",)),
            GenerationRequest("reverse: wxyz -> zyxw\ncopy: ab ->", max_tokens=3),
        ]
    )
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([tok("copy: abcd ->", add_special_tokens=False)["input_ids"]])
    gen = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    expected = tok.decode(gen[0, ids.shape[1] :], skip_special_tokens=True).split("\n")[0]
    assert outs[0] == expected and "\n" not in outs[0]
    assert len(tok(outs[1], add_special_tokens=False)["input_ids"]) <= 3


def test_bad_dtype_is_refused(tiny_model_dir):
    with pytest.raises(ConfigError, match="unknown --llm-args dtype="):
        HuggingFaceLLM(str(tiny_model_dir), dtype="float8")


def test_identity_depends_on_contents_not_location(tiny_model_dir, tmp_path, copy_tree):
    moved = copy_tree(tiny_model_dir, tmp_path / "elsewhere")
    a = HuggingFaceLLM.result_identity({"checkpoint": str(tiny_model_dir), "batch_size": 4})
    b = HuggingFaceLLM.result_identity({"checkpoint": str(moved), "device": "cpu"})
    assert a == b
    (moved / "config.json").write_text((moved / "config.json").read_text().replace("}", ', "x": 1}', 1))
    assert HuggingFaceLLM.result_identity({"checkpoint": str(moved)}) != a
