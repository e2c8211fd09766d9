"""The HF backend against direct forward passes of the same tiny model."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval_framework.embedded import checkpoint_dir
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
    assert outs[0] == expected
    assert "\n" not in outs[0]
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


def _lm_eval_reference(model_dir, context: str, continuation: str, add_special_tokens: bool) -> float:
    """lm-eval's causal rule: encode context and context+continuation (with the tokenizer's special
    tokens as asked), the continuation is what follows the context's tokens."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    ctx = tok(context, add_special_tokens=add_special_tokens)["input_ids"]
    whole = tok(context + continuation, add_special_tokens=add_special_tokens)["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
    return sum(logprobs[i - 1, whole[i]].item() for i in range(len(ctx), len(whole)))


BOS_REQUESTS = [
    LoglikelihoodRequest("Question: Which is a planet?\nAnswer:", " Mars"),
    LoglikelihoodRequest("Question: Café or tea? \nAnswer: ", "温度 CO₂"),
    LoglikelihoodRequest("", "Sarah always got the harder cases."),
]


def test_bos_follows_the_tokenizer_default(bos_llama_dir):
    llm = HuggingFaceLLM(str(bos_llama_dir), dtype="float32", device="cpu", batch_size=2)
    assert llm.describe()["bos_token"] is True
    got = llm.loglikelihood(BOS_REQUESTS[:2])
    for req, res in zip(BOS_REQUESTS, got, strict=False):
        expected = _lm_eval_reference(bos_llama_dir, req.context, req.continuation, add_special_tokens=True)
        assert res.logprob == pytest.approx(expected, abs=1e-4)
    # BOS once, before the context; never between context and continuation
    ctx, cont = llm._encode_pair(BOS_REQUESTS[0].context, BOS_REQUESTS[0].continuation)
    assert ctx[0] == llm.tokenizer.bos_token_id
    assert llm.tokenizer.bos_token_id not in ctx[1:] + cont
    # an empty context is BOS alone; a context already starting with the BOS text gets no second one
    ctx, cont = llm._encode_pair("", "Sarah")
    assert ctx == [llm.tokenizer.bos_token_id]
    assert cont == llm.tokenizer("Sarah", add_special_tokens=False)["input_ids"]
    ctx, _ = llm._encode_pair("<s>Question: x", " y")
    assert ctx.count(llm.tokenizer.bos_token_id) == 1


def test_add_bos_token_overrides_the_tokenizer(bos_llama_dir, tiny_model_dir):
    off = HuggingFaceLLM(str(bos_llama_dir), dtype="float32", device="cpu", add_bos_token=False)
    req = BOS_REQUESTS[0]
    expected = _lm_eval_reference(bos_llama_dir, req.context, req.continuation, add_special_tokens=False)
    assert off.loglikelihood([req])[0].logprob == pytest.approx(expected, abs=1e-4)
    assert off.describe()["bos_token"] is False
    # the char tokenizer adds nothing by default; asked, its BOS goes first
    plain = HuggingFaceLLM(str(tiny_model_dir), dtype="float32", device="cpu")
    forced = HuggingFaceLLM(str(tiny_model_dir), dtype="float32", device="cpu", add_bos_token=True)
    assert plain._encode_pair("copy: ab ->", " ab")[0] == plain.tokenizer("copy: ab ->")["input_ids"]
    assert forced._encode_pair("copy: ab ->", " ab")[0][0] == forced.tokenizer.bos_token_id


def test_generation_starts_from_bos_and_stops_at_reference_sequences(bos_llama_dir):
    llm = HuggingFaceLLM(str(bos_llama_dir), dtype="float32", device="cpu")
    out = llm.generate([GenerationRequest("Question: Mars?\nAnswer:", max_tokens=8, stop=("Question:",))])[0]
    tok = AutoTokenizer.from_pretrained(bos_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(bos_llama_dir, dtype=torch.float32).eval()
    ids = torch.tensor([tok("Question: Mars?\nAnswer:")["input_ids"]])  # the tokenizer's BOS included
    assert ids[0, 0].item() == tok.bos_token_id
    gen = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    expected = tok.decode(gen[0, ids.shape[1] :], skip_special_tokens=True).split("Question:")[0]
    assert out == expected


def test_add_bos_token_is_part_of_the_identity(tiny_model_dir):
    ident = {
        value: HuggingFaceLLM.result_identity({"checkpoint": str(tiny_model_dir), "add_bos_token": value})
        for value in (None, True, False)
    }
    assert ident[None]["add_bos_token"] == "tokenizer default"
    assert len({json.dumps(i, sort_keys=True) for i in ident.values()}) == 3


def test_a_prompt_longer_than_the_context_is_cut_from_the_left_and_said_once(tiny_model_dir, caplog, capsys):
    llm = HuggingFaceLLM(str(tiny_model_dir), dtype="float32", device="cpu", batch_size=2, max_length=32)
    long = "abcd " * 40  # about 200 characters: far over 32 tokens
    cut = llm.loglikelihood([LoglikelihoodRequest(long, " ab"), LoglikelihoodRequest(long, " cd")])
    # one token a character: the 33 tokens kept are the context's last 30 and the continuation
    kept = llm.loglikelihood([LoglikelihoodRequest(long[-30:], " ab")])[0].logprob
    assert caplog.text.count("longer than the model's context (32 tokens)") == 1
    assert "Token indices sequence length" not in capsys.readouterr().err  # the tokenizer's own warning
    assert cut[0].logprob == pytest.approx(kept, abs=1e-5)
    llm.generate([GenerationRequest(long, max_tokens=4, stop=("\n",))])
    assert caplog.text.count("longer than the model's context") == 1


def test_more_new_tokens_than_the_context_holds_are_refused_naming_the_flag(tiny_model_dir):
    llm = HuggingFaceLLM(str(tiny_model_dir), dtype="float32", device="cpu", batch_size=2)  # 128 positions
    with pytest.raises(
        ConfigError, match=r"200 new tokens leave no room .* context of 128 tokens; pass a smaller"
    ):
        llm.generate([GenerationRequest("ab", max_tokens=200)])
    assert llm.generate([GenerationRequest("ab", max_tokens=8)])  # below it: generates


def test_padded_batches_raise_no_attention_mask_warning(capfd):
    """GPT-2 warns when its pad token pads an unmasked batch; right padding needs no mask (causality
    hides it), so rows are padded with another token and nothing alarming is printed."""
    model_dir = checkpoint_dir("v2")  # the shipped model: a GPT-2 whose config names its pad token
    llm = HuggingFaceLLM(str(model_dir), dtype="float32", device="cpu", batch_size=4)
    requests = [LoglikelihoodRequest("ab" * n, " cd") for n in (1, 5, 9)]
    llm.loglikelihood(requests)
    llm.max_length = 8  # the contexts are now cut: the full-pass path, padded as well
    llm.loglikelihood(requests)
    assert "attention_mask" not in capfd.readouterr().err


def test_batched_generation_says_nothing_about_attention_masks(tmp_path):
    """Stopped rows are fed the pad token while others generate, and transformers then warns about
    a missing attention mask: it would alarm users for nothing (the mask is applied: batched
    generation equals each prompt alone, tests/models/test_shared_context.py). A process of its own:
    transformers says it once per process."""
    import subprocess
    import sys

    from eval_framework.embedded import checkpoint_dir

    command = [sys.executable, "-m", "eval_framework", "--llm-name", "hf", "--llm-args",
               f"checkpoint={checkpoint_dir('v1')}", "--task-name", "tiny-letters-gen", "--num-fewshot", "3",
               "--num-samples", "16", "--output-dir", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "Results:" in done.stdout
    assert "attention_mask" not in done.stderr
