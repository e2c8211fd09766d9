"""Shared fixtures: tiny models built in the test, a CLI runner, no network."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eval_framework.cli import main
from eval_framework.embedded import checkpoint_dir
from tests.wandb_log_reader import flush_service

# Hub libraries read these when imported (test modules import transformers at collection), so
# they are set before anything else: the suite never reaches a hub, and caches stay private.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="eval-framework-test-hf-")
os.environ["WANDB_MODE"] = "offline"
os.environ["EVAL_FRAMEWORK_CACHE_DIR"] = tempfile.mkdtemp(prefix="eval-framework-test-cache-")

FIXTURES = Path(__file__).parent / "fixtures"
_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> None:
    """Refuse any connection that is not to this machine: a test that needs the network fails."""
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            raise OSError(f"test tried to reach {host}: tests must not touch the network")
    _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


USER_MODELS = FIXTURES / "user_models.py"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test touches the network: hub libraries offline, caches in the test's tmp dir.
    The environment is restored afterwards (.env loading writes into it)."""
    saved = dict(os.environ)
    monkeypatch.chdir(tmp_path)
    yield
    os.environ.clear()
    os.environ.update(saved)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        flush_service()  # what the process's exit would do: W&B logs complete before tests read them
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised (seeded) GPT-2 built here, with the shipped char tokenizer."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    out = tmp_path_factory.mktemp("tiny-model")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir("v0"))
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=32,
        n_layer=2,
        n_head=2,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def bos_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama whose byte-level BPE tokenizer adds BOS by default."""
    from tests.fixtures.bos_llama import build_bos_llama

    return build_bos_llama(tmp_path_factory.mktemp("bos-llama"))


@pytest.fixture
def letters_task(tmp_path: Path) -> Path:
    """A private YAML task over local JSONL, as a team would write one."""
    data = tmp_path / "letters"
    data.mkdir()
    rows = [
        '{"q": "copy: abcd ->", "options": ["abcd", "dcba", "badc"], "gold": 0, "kind": "copy"}',
        '{"q": "copy: wxyz ->", "options": ["zyxw", "wxyz", "xwzy"], "gold": 1, "kind": "copy"}',
        '{"q": "reverse: abcd ->", "options": ["abcd", "dcba", "badc"], "gold": "dcba", "kind": "reverse"}',
        '{"q": "reverse: mnop ->", "options": ["ponm", "mnop", "nmpo"], "gold": "A", "kind": "reverse"}',
        '{"q": "copy: qrst ->", "options": ["qrst", "tsrq", "rqts"], "gold": 0, "kind": "copy"}',
        '{"q": "reverse: efgh ->", "options": ["efgh", "fehg", "hgfe"], "gold": 2, "kind": "reverse"}',
    ]
    (data / "eval.jsonl").write_text("\n".join(rows) + "\n")
    (data / "shots.jsonl").write_text("\n".join(rows[:4]) + "\n")
    task = tmp_path / "letters.yaml"
    task.write_text(
        "name: letters\nlanguage: en\ndata:\n  eval: letters/eval.jsonl\n  fewshot: letters/shots.jsonl\n"
        "prompt: '{q}'\nchoices: options\ntarget: gold\nsubject: kind\n"
    )
    return task


@pytest.fixture
def copy_tree() -> Callable[[Path, Path], Path]:
    def copy(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst)
        return dst

    return copy
