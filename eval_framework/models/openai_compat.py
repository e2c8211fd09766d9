"""OpenAI-compatible completions backend (vLLM, TGI, llama.cpp server, ...)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from eval_framework import retry_policy
from eval_framework.errors import ConfigError, ModelError, brief
from eval_framework.models.base import (
    BaseLLM,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from eval_framework.net import classify
from eval_framework.redact import scrub

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
#: Seconds; tests set it to 0.
RETRY_WAIT_MAX = 30.0


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx and dropped or slow connections are retried; a refused connection or an
    unknown host is not (nothing listens there: retrying only delays the answer)."""
    if isinstance(exc, _Transient):
        return True
    return isinstance(exc, httpx.TransportError) and classify(exc).retryable


def _retry_after(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, _Transient) else None


class OpenAICompatibleLLM(BaseLLM):
    """Talks to ``{base_url}/completions``.

    Loglikelihood needs prompt logprobs (``echo=true`` with ``logprobs``), which vLLM and most
    self-hosted servers return; hosted chat-only APIs do not, and then only generation tasks work.
    """

    def __init__(  # noqa: PLR0913  (each parameter is an --llm-args name)
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key: str | None = None,
        batch_size: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        name: str | None = None,
    ) -> None:
        if not model:
            raise ConfigError("the openai backend needs a model: pass --llm-args model=<served model name>")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.batch_size = int(batch_size)
        self.max_retries = int(max_retries)
        self.name = name or model
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, headers={"Authorization": f"Bearer {key}"}
        )

    @classmethod
    def display_name_for(cls, llm_args: dict[str, Any]) -> str:
        return str(llm_args.get("name") or llm_args.get("model") or "openai")

    def describe(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model}

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            response = self._client.post("/completions", json=payload)
            if response.status_code in _RETRY_STATUS:
                after = response.headers.get("retry-after")
                raise _Transient(
                    f"HTTP {response.status_code}", float(after) if after and after.isdigit() else None
                )
            if response.status_code >= 400:
                check = (
                    "check the key (--llm-args api_key= or OPENAI_API_KEY)"
                    if response.status_code in (401, 403)
                    else "check --llm-args model= and base_url="
                )
                raise ModelError(
                    f"the server at {self.base_url} refused the request (HTTP {response.status_code}): "
                    f"{scrub(response.text[:300])}; {check}"
                )
            data: dict[str, Any] = response.json()
            return data

        try:
            policy = retry_policy.Policy(
                _is_transient, self.max_retries, RETRY_WAIT_MAX, first_wait=0.5, suggested_wait=_retry_after
            )
            return retry_policy.call(once, policy)
        except (_Transient, httpx.TransportError) as exc:
            if not _is_transient(exc):
                raise ModelError(
                    f"cannot reach the server at {self.base_url} ({classify(exc).reason}): check that it is "
                    "running and that --llm-args base_url=... names it"
                ) from exc
            raise ModelError(
                f"the server at {self.base_url} did not answer after {self.max_retries} tries "
                f"({brief(exc)}); "
                "check that it is running and reachable"
            ) from exc

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        out: list[str] = []
        for req in requests:  # stop and max_tokens differ per request, so one call each
            payload = {
                "model": self.model,
                "prompt": req.context,
                "max_tokens": req.max_tokens,
                "temperature": 0.0,
            }
            if req.stop:
                payload["stop"] = list(req.stop)
            data = self._post(payload)
            out.append(str(data["choices"][0]["text"]))
        return out

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        results: list[LoglikelihoodResult] = []
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start : start + self.batch_size]
            data = self._post(
                {
                    "model": self.model,
                    "prompt": [r.context + r.continuation for r in batch],
                    "max_tokens": 0,
                    "echo": True,
                    "logprobs": 1,
                    "temperature": 0.0,
                }
            )
            choices = sorted(data.get("choices", []), key=lambda c: c.get("index", 0))
            if len(choices) != len(batch):
                raise ModelError(
                    f"the server at {self.base_url} returned {len(choices)} choices for {len(batch)} "
                    "prompts; check that it is an OpenAI-compatible completions server"
                )
            for req, choice in zip(batch, choices, strict=True):
                results.append(self._score(req, choice))
        return results

    def _score(self, req: LoglikelihoodRequest, choice: dict[str, Any]) -> LoglikelihoodResult:
        lp = choice.get("logprobs") or {}
        tokens, offsets = lp.get("tokens"), lp.get("text_offset")
        token_lps, top = lp.get("token_logprobs"), lp.get("top_logprobs")
        if not tokens or offsets is None or token_lps is None:
            raise ModelError(
                f"the server at {self.base_url} does not return prompt logprobs (echo + logprobs), "
                "so it cannot score multiple-choice tasks; use a generation task or a server like vLLM"
            )
        boundary = len(req.context)
        total, greedy, count = 0.0, True, 0
        for i, (token, offset, value) in enumerate(zip(tokens, offsets, token_lps, strict=False)):
            if offset + len(token) <= boundary:
                continue
            if value is None:
                raise ModelError(
                    f"the server at {self.base_url} returned no logprob for a continuation token; use a "
                    "server that returns prompt logprobs (vLLM does)"
                )
            total += float(value)
            count += 1
            if top and i < len(top) and top[i]:
                best = max(top[i].items(), key=lambda kv: kv[1])[0]
                greedy = greedy and best == token
        if count == 0:
            raise ModelError(
                f"continuation {req.continuation!r} got no tokens from the server; check the task's choices "
                "(an empty choice?)"
            )
        return LoglikelihoodResult(total, greedy, count)
