"""Log-likelihoods of continuations that share a context, the context run once.

A multiple-choice question asks for the log-likelihood of each choice after one context, and the
context is most of the tokens (a 10-shot HellaSwag prompt is ~700 tokens, an ending ~20). So the
contexts of a batch of questions run once, right-padded and without an attention mask (padding at
the end of a causal sequence changes nothing before it), keeping their keys and values and the
logits of their last position only (which score every choice's first token: a single-token choice,
an MMLU letter, needs nothing more). Then every choice's remaining tokens run once over a copy of
its context's cache, masked past the context's own length, at the positions that follow it.

The numbers are those of one forward pass over context + continuation, as lm-evaluation-harness
computes them, up to floating-point summation order (the parity tests hold both to 1e-4).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Scored:
    """One continuation's sum of log-probabilities and whether greedy decoding gives it."""

    logprob: float
    is_greedy: bool


@dataclass
class ContextGroup:
    """One context and the continuations scored after it."""

    context: tuple[int, ...]
    continuations: list[tuple[int, ...]]


def cache_argument(model: Any) -> str | None:
    """The name under which the model's forward takes and returns its key/value cache
    (``past_key_values``; ``cache`` in newer transformers), or None when it takes no cache and
    explicit positions (a remote-code model may not: it is then scored one full pass per request)."""
    try:
        params = set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return None
    if not {"position_ids", "use_cache"} <= params:
        return None
    return next((name for name in ("cache", "past_key_values") if name in params), None)


def _keeps_logits(model: Any) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


#: A prefix shared by every context of a batch shorter than this is run with each (not worth a pass).
MIN_SHARED_PREFIX = 32


def shared_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every sequence of a batch has in common, leaving each at least one
    of its own (whose logits are read); 0 when not worth a pass of its own."""
    if len(sequences) < 2:
        return 0
    first, shortest = sequences[0], min(len(s) for s in sequences)
    length = 0
    while length < shortest - 1 and all(s[length] == first[length] for s in sequences):
        length += 1
    return length if length >= MIN_SHARED_PREFIX else 0


def prefix_cache(
    model: Any, torch: Any, prefix: Sequence[int], rows: int, device: str, cache_arg: str
) -> Any:
    """The keys and values of ``prefix`` run once, copied to ``rows`` rows."""
    keep_one = {"logits_to_keep": 1} if _keeps_logits(model) else {}
    head = model(input_ids=torch.tensor([list(prefix)], device=device), use_cache=True, **keep_one)
    cache = getattr(head, cache_arg)
    cache.batch_select_indices(torch.zeros(rows, dtype=torch.long, device=device))
    return cache


def score_groups(
    model: Any, torch: Any, groups: Sequence[ContextGroup], pad_id: int, device: str, cache_arg: str
) -> list[list[Scored]]:
    """The continuations of ``groups`` (one model batch of contexts), scored after their context;
    per group, in the order of its continuations. ``cache_arg``: see ``cache_argument``."""
    widths = [len(g.context) for g in groups]
    width = max(widths)
    ids = torch.full((len(groups), width), pad_id, dtype=torch.long)
    for row, group in enumerate(groups):
        ids[row, : len(group.context)] = torch.tensor(group.context)
    rows = [(g, c) for g, group in enumerate(groups) for c in group.continuations]
    tail_width = max(len(c) for _, c in rows) - 1  # 0: single tokens, read from this pass alone
    extra: dict[str, Any] = {}
    shared = shared_prefix([g.context for g in groups])
    if shared:
        # The same few-shot examples before every question (MMLU's first dev examples): run once,
        # their keys and values copied to every row, the rest of each context run after them.
        extra[cache_arg] = prefix_cache(
            model, torch, groups[0].context[:shared], len(groups), device, cache_arg
        )
    last = torch.tensor([w - 1 - shared for w in widths])
    if _keeps_logits(model):
        # Only the last real position of each row is read: the vocabulary projection of the others
        # is most of a small model's work, and its memory is batch x length x vocabulary.
        kept, last = torch.unique(last, return_inverse=True)
        extra["logits_to_keep"] = kept.to(device)
    out = model(input_ids=ids[:, shared:].to(device), use_cache=bool(tail_width), **extra)
    first = torch.log_softmax(out.logits[torch.arange(len(groups)), last.to(device)].float(), dim=-1)

    rows_group = torch.tensor([g for g, _ in rows], device=device)
    heads = torch.tensor([c[0] for _, c in rows], device=device)
    head_lp = first[rows_group, heads]
    head_greedy = first.argmax(-1)[rows_group] == heads
    if tail_width:
        step = _TailStep(model, torch, cache_arg, getattr(out, cache_arg), pad_id, device)
        tails = step.run(groups, rows, tail_width, width)
        targets = torch.zeros((len(rows), tail_width), dtype=torch.long)
        real = torch.zeros((len(rows), tail_width), dtype=torch.bool)
        for r, (_, cont) in enumerate(rows):
            targets[r, : len(cont) - 1] = torch.tensor(cont[1:], dtype=torch.long)
            real[r, : len(cont) - 1] = True
        targets, real = targets.to(device), real.to(device)
        tail_lp = tails.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        head_lp = head_lp + torch.where(real, tail_lp, torch.zeros_like(tail_lp)).sum(-1)
        head_greedy = head_greedy & ((tails.argmax(-1) == targets) | ~real).all(-1)
    logprobs, greedy = head_lp.tolist(), head_greedy.tolist()
    scored: list[list[Scored]] = [[] for _ in groups]
    for r, (g, _) in enumerate(rows):
        scored[g].append(Scored(float(logprobs[r]), bool(greedy[r])))
    return scored


@dataclass
class _TailStep:
    """The second pass: every continuation's tokens after its first, over its context's cache."""

    model: Any
    torch: Any
    cache_arg: str
    cache: Any
    pad_id: int
    device: str

    def run(
        self,
        groups: Sequence[ContextGroup],
        rows: list[tuple[int, tuple[int, ...]]],
        tail_width: int,
        context_width: int,
    ) -> Any:
        """Log-probabilities (rows x tail_width x vocabulary) predicting each continuation's
        tokens after its first."""
        torch, device, pad_id = self.torch, self.device, self.pad_id
        # One copy of its context's keys and values per continuation.
        self.cache.batch_select_indices(torch.tensor([g for g, _ in rows], device=device))
        ids = torch.full((len(rows), tail_width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), context_width + tail_width), dtype=torch.long)
        positions = torch.zeros((len(rows), tail_width), dtype=torch.long)
        for r, (g, cont) in enumerate(rows):
            length = len(groups[g].context)
            tail = cont[:-1]  # its last token is only predicted
            ids[r, : len(tail)] = torch.tensor(tail, dtype=torch.long)
            mask[r, :length] = 1  # the context's padding is never seen
            mask[r, context_width:] = 1  # the tail's own padding comes after it: causality hides it
            positions[r] = torch.arange(length, length + tail_width)
        out = self.model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=False,
            **{self.cache_arg: self.cache},
        )
        return torch.log_softmax(out.logits.float(), dim=-1)
