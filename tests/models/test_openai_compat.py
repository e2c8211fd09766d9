"""The OpenAI-compatible backend against a local server that speaks the completions API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from eval_framework.errors import ModelError
from eval_framework.models import openai_compat
from eval_framework.models.base import GenerationRequest, LoglikelihoodRequest
from eval_framework.models.openai_compat import OpenAICompatibleLLM


def _lp(token: str) -> float:
    return -0.1 * (ord(token) % 7) - 0.05


class FakeCompletions(BaseHTTPRequestHandler):
    """Character tokens; echo+logprobs like vLLM (first prompt token has logprob None)."""

    state: ClassVar[dict] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.state.setdefault("auth", []).append(self.headers.get("Authorization"))
        self.state["calls"] = self.state.get("calls", 0) + 1
        if self.state.get("throttle", 0) > 0:
            self.state["throttle"] -= 1
            return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
        if self.path != "/v1/completions":
            return self._send(404, {"error": "not found"})
        if body.get("model") != "tiny":
            return self._send(404, {"error": f"model {body.get('model')} does not exist"})
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = []
        for i, prompt in enumerate(prompts):
            if body.get("echo"):
                if self.state.get("no_logprobs"):
                    choices.append({"index": i, "text": prompt, "logprobs": None})
                    continue
                tokens = list(prompt)
                lps = [None] + [_lp(t) for t in tokens[1:]]
                top = [None] + [{t: _lp(t)} if t != "b" else {"z": 0.0, t: _lp(t)} for t in tokens[1:]]
                offsets = list(range(len(tokens)))
                choices.append(
                    {
                        "index": i,
                        "text": prompt,
                        "logprobs": {
                            "tokens": tokens,
                            "token_logprobs": lps,
                            "top_logprobs": top,
                            "text_offset": offsets,
                        },
                    }
                )
            else:
                text = "42\nQuestion: more" if "?" in prompt else " abc"
                for stop in body.get("stop", []):
                    text = text.split(stop)[0]
                choices.append({"index": i, "text": text})
        self._send(200, {"choices": choices})


@pytest.fixture
def server(monkeypatch) -> Iterator[tuple[str, dict]]:
    monkeypatch.setattr(openai_compat, "RETRY_WAIT_MAX", 0.0)
    state: ClassVar[dict] = {}
    handler = type("H", (FakeCompletions,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", state
    httpd.shutdown()


def test_loglikelihood_sums_continuation_tokens(server):
    url, _ = server
    llm = OpenAICompatibleLLM("tiny", url, batch_size=2)
    results = llm.loglikelihood(
        [
            LoglikelihoodRequest("Q: x", " ab"),
            LoglikelihoodRequest("Q:", " a"),
            LoglikelihoodRequest("Q", "aa"),
        ]
    )
    assert results[0].logprob == pytest.approx(_lp(" ") + _lp("a") + _lp("b"))
    assert results[0].num_tokens == 3
    assert results[0].is_greedy is False
    assert results[1].is_greedy is True
    assert results[2].logprob == pytest.approx(2 * _lp("a"))


def test_generation_passes_stop_sequences(server):
    url, _ = server
    llm = OpenAICompatibleLLM("tiny", url)
    assert llm.generate([GenerationRequest("2+2?", 8, ("\nQuestion:",)), GenerationRequest("copy", 4)]) == [
        "42",
        " abc",
    ]


def test_retries_throttling_then_succeeds(server):
    url, state = server
    state["throttle"] = 2
    llm = OpenAICompatibleLLM("tiny", url, max_retries=3)
    assert llm.generate([GenerationRequest("copy", 4)]) == [" abc"]
    assert state["calls"] == 3


def test_gives_up_with_a_clear_error(server):
    url, state = server
    state["throttle"] = 10
    with pytest.raises(ModelError, match="did not answer after 2 tries"):
        OpenAICompatibleLLM("tiny", url, max_retries=2).generate([GenerationRequest("copy", 4)])


def test_server_without_prompt_logprobs_is_explained(server):
    url, state = server
    state["no_logprobs"] = True
    with pytest.raises(ModelError, match="does not return prompt logprobs"):
        OpenAICompatibleLLM("tiny", url).loglikelihood([LoglikelihoodRequest("a", "b")])


def test_unknown_model_error_keeps_the_key_secret(server, monkeypatch):
    url, state = server
    secret = "sk-secret-value-123456"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with pytest.raises(ModelError, match="HTTP 404") as info:
        OpenAICompatibleLLM("other", url).generate([GenerationRequest("x", 2)])
    assert secret not in str(info.value)
    assert state["auth"] == [f"Bearer {secret}"]


def test_unreachable_server_fails_at_once(monkeypatch):
    """Nothing listens there: retrying only delays the answer."""
    import time

    monkeypatch.setattr(openai_compat, "RETRY_WAIT_MAX", 5.0)
    started = time.monotonic()
    with pytest.raises(
        ModelError, match=r"cannot reach the server at http://127.0.0.1:9/v1 \(connection refused\)"
    ):
        OpenAICompatibleLLM("tiny", "http://127.0.0.1:9/v1", max_retries=5, timeout=2).generate(
            [GenerationRequest("x", 2)]
        )
    assert time.monotonic() - started < 3
