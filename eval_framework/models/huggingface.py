"""Hugging Face transformers backend (local checkpoint directory or hub id)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from eval_framework.errors import ConfigError, ModelError, brief, missing_extra
from eval_framework.fingerprint import directory_fingerprint
from eval_framework.models.auto_batch import BatchSize, BatchSizeSetting, parse_batch_size
from eval_framework.models.base import (
    BaseLLM,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    apply_stop,
)
from eval_framework.models.shared_context import (
    ContextGroup,
    cache_argument,
    prefix_cache,
    score_groups,
    shared_prefix,
)

log = logging.getLogger(__name__)

_DTYPES = ("auto", "float32", "float16", "bfloat16")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise missing_extra("torch", "hf") from exc
    return torch


class _NoPaddingMaskWarning(logging.Filter):
    """Drops transformers' "We strongly recommend passing in an `attention_mask`": during batched
    generation, rows that have stopped are fed the pad token and some models' decoding steps run
    without an explicit mask, which sets it off. The mask is applied (batched generation equals each
    prompt alone: tests/models/test_shared_context.py), and right-padded scoring passes never read
    their padding, so the warning only alarms."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "recommend passing in an `attention_mask`" not in record.getMessage()


def _quiet_padding_warning() -> None:
    target = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _NoPaddingMaskWarning) for f in target.filters):
        target.addFilter(_NoPaddingMaskWarning())


class HuggingFaceLLM(BaseLLM):
    """A causal LM loaded with transformers.

    Subclass and set ``default_checkpoint`` to register a named model in a ``--models`` file::

        class Llama31_8B_Instruct_HF(HuggingFaceLLM):
            default_checkpoint = "meta-llama/Llama-3.1-8B-Instruct"
    """

    default_checkpoint: ClassVar[str | None] = None
    sizes_own_batches: ClassVar[bool] = True

    def __init__(  # noqa: PLR0913  (each parameter is an --llm-args name)
        self,
        checkpoint: str | None = None,
        *,
        revision: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: BatchSizeSetting = 8,
        max_length: int | None = None,
        trust_remote_code: bool = False,
        add_bos_token: bool | None = None,
        name: str | None = None,
    ) -> None:
        checkpoint = checkpoint or self.default_checkpoint
        HuggingFaceLLM.validate_args({"checkpoint": checkpoint, "dtype": dtype})  # not a subclass's rules
        self.checkpoint = str(checkpoint)
        self.revision = revision
        setting = parse_batch_size(batch_size, "batch_size")
        self.batch_size: BatchSizeSetting = 8 if setting is None else setting
        self.trust_remote_code = bool(trust_remote_code)
        self.name = name or self.name or type(self).display_name_for({"checkpoint": self.checkpoint})
        torch = _import_torch()
        try:
            import transformers
        except ImportError as exc:
            raise missing_extra("transformers", "hf") from exc
        self._torch = torch
        self._batches = BatchSize(self.batch_size, torch)
        # Our own progress bar covers the evaluation; per-shard loading bars are noise in logs.
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        _quiet_padding_warning()
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.dtype_name = self._pick_dtype(dtype)
        local = Path(self.checkpoint).expanduser()
        source = str(local) if local.exists() else self.checkpoint
        self._local_dir = local if local.is_dir() else None
        self.tokenizer: Any
        self.model: Any
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, revision=revision, trust_remote_code=self.trust_remote_code
            )
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                source,
                revision=revision,
                dtype=getattr(torch, self.dtype_name),
                trust_remote_code=self.trust_remote_code,
            )
        except (OSError, ValueError, RuntimeError) as exc:
            hint = (
                "check that it holds config.json, weights and tokenizer files"
                if local.exists()
                else "check the path or hub id; offline, only cached hub models load"
            )
            raise ModelError(f"could not load model {self.checkpoint!r}: {brief(exc)}; {hint}") from exc
        self.model.to(self.device)
        self.model.eval()
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None
        )
        self.max_length = int(max_length or limit or 2048)
        # Longer inputs are cut here, from the left, and said once (_say_truncated); the
        # tokenizer's own warning about them would only repeat it in other words.
        self.tokenizer.model_max_length = int(1e30)
        self._truncated_said = False
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._prefix_id = self.tokenizer.bos_token_id
        if self._prefix_id is None:
            self._prefix_id = self.tokenizer.eos_token_id
        self._bos = self._bos_prefix(add_bos_token)
        self._cache_not_shared = False

    def _bos_prefix(self, add_bos_token: bool | None) -> list[int]:
        """The tokens put once before every context: BOS when the tokenizer adds it by default
        (Llama, Mistral, Gemma) or ``add_bos_token=true`` asks for it, as lm-eval does."""
        bos = self.tokenizer.bos_token_id
        if add_bos_token is None:
            ids = self.tokenizer("a")["input_ids"]
            return [bos] if bos is not None and ids[:1] == [bos] else []
        if add_bos_token and bos is None:
            raise ConfigError(
                f"--llm-args add_bos_token=true, but the tokenizer of {self.checkpoint!r} has no BOS token; "
                "drop the argument"
            )
        return [bos] if add_bos_token else []

    def _encode_context(self, text: str) -> list[int]:
        # A context that already starts with the BOS text gets no second one (lm-eval's rule).
        bos_text = self.tokenizer.bos_token
        bos = [] if bos_text and text.startswith(bos_text) else self._bos
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return bos + ids

    def _pick_dtype(self, dtype: str) -> str:
        if dtype != "auto":
            return dtype
        torch = self._torch
        if self.device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return "bfloat16"
        return "float32"

    # identity -------------------------------------------------------------------------------
    @classmethod
    def validate_args(cls, llm_args: dict[str, Any]) -> None:
        super().validate_args(llm_args)
        if not (llm_args.get("checkpoint") or cls.default_checkpoint):
            raise ConfigError(
                f"{cls.__name__} needs a checkpoint: pass --checkpoint <registry ref> or "
                "--llm-args checkpoint=<dir or hub id>"
            )
        parse_batch_size(llm_args.get("batch_size"), "--llm-args batch_size")
        dtype = llm_args.get("dtype", "auto")
        if dtype not in _DTYPES:
            raise ConfigError(f"unknown --llm-args dtype={dtype!r}; use one of {', '.join(_DTYPES)}")

    @classmethod
    def _checkpoint_from(cls, llm_args: dict[str, Any]) -> str | None:
        if "checkpoint" in llm_args and llm_args["checkpoint"] is None:
            return None  # given explicitly as none: the pipeline supplies a registry checkpoint
        value = llm_args.get("checkpoint") or cls.default_checkpoint
        return str(value) if value else None

    @classmethod
    def result_identity(cls, llm_args: dict[str, Any]) -> dict[str, Any]:
        ident = super().result_identity(llm_args)
        ident["args"].pop("checkpoint", None)
        # Whether contexts begin with BOS changes every log-likelihood: the tokenizer's default
        # (its files are in the checkpoint's fingerprint or hub commit), or what the user asked.
        bos = ident["args"].pop("add_bos_token", None)
        ident["add_bos_token"] = "tokenizer default" if bos is None else bool(bos)
        checkpoint = cls._checkpoint_from(llm_args)
        local = Path(checkpoint).expanduser() if checkpoint else None
        if local is not None and local.is_dir():
            # Where the files sit does not change results; what they contain does.
            ident["checkpoint_fingerprint"] = directory_fingerprint(local)
        else:
            ident["checkpoint"] = checkpoint
            if checkpoint:
                from eval_framework.models.hub_revision import hub_commit

                # A branch moves; the commit it points at now is what gets evaluated.
                ident["hub_commit"] = hub_commit(checkpoint, llm_args.get("revision"))
        return ident

    @classmethod
    def display_name_for(cls, llm_args: dict[str, Any]) -> str:
        # A named subclass (``--llm-name Llama31_8B_Instruct_HF``) is known by its class name;
        # a registry checkpoint by collection and alias; a path by its last part.
        if llm_args.get("name") or cls.name or cls is not HuggingFaceLLM:
            return super().display_name_for(llm_args)
        return Path((cls._checkpoint_from(llm_args) or "model").rstrip("/")).name

    def describe(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "device": self.device,
            "dtype": self.dtype_name,
            "bos_token": bool(self._bos),
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }

    # loglikelihood --------------------------------------------------------------------------
    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        # As lm-eval: trailing context whitespace belongs to the continuation (tokenizers merge a
        # leading space into the next word); the whole text is encoded once and split after the
        # context's tokens; BOS, when used, comes once before the context.
        spaces = len(context) - len(context.rstrip())
        if spaces:
            continuation = context[-spaces:] + continuation
            context = context[:-spaces]
        ctx = self._encode_context(context)
        if ctx:
            cont = self._encode_context(context + continuation)[len(ctx) :]
        else:  # nothing to condition on: the prefix token stands in (BOS, else EOS)
            ctx = [self._prefix_id] if self._prefix_id is not None else []
            cont = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not cont:
            raise ModelError(
                f"continuation {continuation!r} encodes to no tokens; "
                "check the task's choices (an empty choice?)"
            )
        return ctx, cont

    def _say_truncated(self) -> None:
        """A prompt longer than the model's context loses its first tokens, as lm-eval's HF model
        does: the scores are what this model can see, which is said once (not silently)."""
        if not self._truncated_said:
            self._truncated_said = True
            log.warning(
                "some prompts are longer than the model's context (%d tokens) and lose their first "
                "tokens (left truncation, as lm-evaluation-harness does); scores may drop: use fewer "
                "few-shot examples (--num-fewshot), fewer new tokens for generation (--max-tokens), "
                "or a model with a longer context",
                self.max_length,
            )

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """As lm-eval's HF model scores them (the same tokens, the same numbers), faster: requests
        that share a context are scored from one pass over it (``shared_context``); a request
        longer than the model's context, or a model that takes no cache, gets a full pass."""
        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        groups: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = {}
        whole: list[tuple[int, list[int], list[int]]] = []
        cache_arg = self._cache_arg()
        for i, req in enumerate(requests):
            ctx, cont = self._encode_pair(req.context, req.continuation)
            if len(ctx) + len(cont) > self.max_length + 1:
                self._say_truncated()
                tokens = (ctx + cont)[-(self.max_length + 1) :]
                whole.append((i, tokens[:-1], tokens[-len(cont) :]))
            elif cache_arg:
                groups.setdefault(tuple(ctx), {}).setdefault(tuple(cont), []).append(i)
            else:
                whole.append((i, (ctx + cont)[:-1], cont))
        with self._torch.inference_mode():
            if cache_arg:
                whole += self._score_shared(groups, results, cache_arg)
            self._score_whole(whole, results)
        return [r for r in results if r is not None]

    def _score_shared(
        self,
        groups: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]],
        results: list[LoglikelihoodResult | None],
        cache_arg: str,
    ) -> list[tuple[int, list[int], list[int]]]:
        """Scores ``groups`` into ``results``; returns the requests left for a full pass each (all
        those not yet scored, when the model's cache turns out not to be shareable)."""
        # Longest contexts first: the first batch shows memory problems early, padding stays small.
        ordered = [(ContextGroup(ctx, list(conts)), conts) for ctx, conts in groups.items()]
        ordered.sort(key=lambda item: -len(item[0].context))
        pad = self._fill_id()

        def score(batch: Sequence[tuple[ContextGroup, dict[tuple[int, ...], list[int]]]]) -> int:
            """The groups of ``batch`` scored into ``results``: all of them, or 0 when the model's
            cache turns out not to be shareable."""
            try:
                scored = score_groups(
                    self.model, self._torch, [g for g, _ in batch], pad, self.device, cache_arg
                )
            except (AttributeError, NotImplementedError, TypeError) as exc:
                self._no_shared_cache(exc)
                return 0
            for (group, conts), group_scores in zip(batch, scored, strict=True):
                for cont, one in zip(group.continuations, group_scores, strict=True):
                    for index in conts[cont]:
                        results[index] = LoglikelihoodResult(one.logprob, one.is_greedy, len(cont))
            return len(batch)

        done = 0
        for count in self._batches.batches(ordered, score, lambda b: sum(len(g.context) for g, _ in b)):
            if not count:  # the rest goes to full passes
                return [
                    (index, list(group.context + cont)[:-1], list(cont))
                    for group, conts in ordered[done:]
                    for cont in group.continuations
                    for index in conts[cont]
                ]
            done += count
        return []

    def _cache_arg(self) -> str | None:
        """The model's cache argument, or None when its cache cannot be shared (see below)."""
        return None if self._cache_not_shared else cache_argument(self.model)

    def _no_shared_cache(self, exc: Exception) -> None:
        """A model whose forward takes a cache that cannot be copied between rows (an older cache
        format, a custom one) is scored one full pass per request from then on: slower, the same
        numbers. Said once."""
        self._cache_not_shared = True
        log.warning(
            "the cache of %s cannot be shared between choices (%s); scoring one full pass per request "
            "instead (slower, the same scores)",
            self.checkpoint,
            brief(exc, with_type=True),
        )

    def _fill_id(self) -> int:
        """What pads right-padded rows: never read (causality hides it from every real token), and
        not the model's pad token, which makes some models (GPT-2) warn about a missing mask."""
        pad = getattr(getattr(self.model, "config", None), "pad_token_id", None)
        return 1 if pad == 0 else 0

    def _score_whole(
        self, encoded: list[tuple[int, list[int], list[int]]], results: list[LoglikelihoodResult | None]
    ) -> None:
        """One full pass per request, right-padded and without an attention mask, as lm-eval does
        (padding after a causal sequence changes nothing before it)."""
        torch = self._torch
        encoded = sorted(encoded, key=lambda item: -len(item[1]))
        pad = self._fill_id()

        def score(batch: Sequence[tuple[int, list[int], list[int]]]) -> None:
            width = max(len(inp) for _, inp, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            for row, (_, inp, _) in enumerate(batch):
                ids[row, : len(inp)] = torch.tensor(inp)
            logprobs = torch.log_softmax(self.model(input_ids=ids.to(self.device)).logits.float(), dim=-1)
            for row, (index, inp, cont) in enumerate(batch):
                span = logprobs[row, len(inp) - len(cont) : len(inp)]
                target = torch.tensor(cont, device=span.device)
                total = span.gather(-1, target.unsqueeze(-1)).sum().item()
                greedy = bool((span.argmax(-1) == target).all().item())
                results[index] = LoglikelihoodResult(float(total), greedy, len(cont))

        for _ in self._batches.batches(encoded, score, lambda b: sum(len(inp) for _, inp, _ in b)):
            pass

    # generation -----------------------------------------------------------------------------
    def _generation_inputs(self, prompts: list[list[int]]) -> tuple[Any, Any, dict[str, Any]]:
        """Input ids and attention mask for a batch of prompts, and the cache to pass along.

        Left padding keeps new tokens aligned. When every prompt starts with the same tokens (fixed
        few-shot examples, a common instruction), they run once: the layout is then prefix,
        padding, rest, the prefix's keys and values given as the cache (positions follow the
        attention mask, so each token sits where it would in a left-padded batch)."""
        torch, pad = self._torch, self.tokenizer.pad_token_id or 0
        cache_arg = self._cache_arg()
        shared = shared_prefix(prompts) if cache_arg else 0
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, :shared], mask[row, :shared] = torch.tensor(p[:shared]), 1
            ids[row, width - len(p) + shared :] = torch.tensor(p[shared:])
            mask[row, width - len(p) + shared :] = 1
        if not shared or cache_arg is None:
            return ids, mask, {}
        try:
            cache = prefix_cache(self.model, torch, prompts[0][:shared], len(prompts), self.device, cache_arg)
        except (AttributeError, NotImplementedError, TypeError) as exc:
            self._no_shared_cache(exc)
            return self._generation_inputs(prompts)
        return ids, mask, {cache_arg: cache}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        torch = self._torch
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].context))
        outputs: list[str] = [""] * len(requests)
        pad = self.tokenizer.pad_token_id or 0
        encoded: dict[int, list[int]] = {}

        def run(idx: Sequence[int]) -> None:
            max_new = max(requests[i].max_tokens for i in idx)
            if max_new >= self.max_length:
                raise ConfigError(
                    f"{max_new} new tokens leave no room for the prompt in the model's context of "
                    f"{self.max_length} tokens; pass a smaller --max-tokens (at most "
                    f"{self.max_length - 1}, less to keep more of the prompt)"
                )
            prompts = []
            for i in idx:
                ids = self._encode_context(requests[i].context)
                if not ids and self._prefix_id is not None:
                    ids = [self._prefix_id]
                if len(ids) > self.max_length - max_new:
                    self._say_truncated()
                prompts.append(ids[-max(1, self.max_length - max_new) :])
                encoded[i] = prompts[-1]
            ids_t, mask, cached = self._generation_inputs(prompts)
            width = ids_t.shape[1]
            # lm-eval also stops at the end-of-sequence text, for models whose generation config
            # names another end token
            eos = [self.tokenizer.eos_token] if self.tokenizer.eos_token else []
            stops = sorted({s for i in idx for s in (*requests[i].stop, *eos) if s})
            extra: dict[str, Any] = {"stop_strings": stops, "tokenizer": self.tokenizer} if stops else {}
            generated = self.model.generate(
                input_ids=ids_t.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=pad,
                **extra,
                **cached,
            )
            for row, i in enumerate(idx):
                new = generated[row, width : width + requests[i].max_tokens].tolist()
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                outputs[i] = apply_stop(text, requests[i].stop)

        def tokens(idx: Sequence[int]) -> int:
            return sum(len(encoded.get(i, ())) for i in idx)

        with torch.inference_mode():
            for _ in self._batches.batches(order, run, tokens):
                pass
        return outputs
