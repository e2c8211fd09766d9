"""A model class for sweep tests (a --models file): it takes checkpoint=<directory>, scores by a
digest of the directory's config.json, and logs what it does so a test can count loads and
scored samples. EF_SWEEP_LOG: the log file; EF_SWEEP_STOP_AT: a checkpoint directory name whose
load sends this process SIGTERM (a scheduler stopping the sweep between versions); a BROKEN file
in a checkpoint makes its load fail."""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from eval_framework import BaseLLM, GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult


def _log(line: str) -> None:
    with open(os.environ["EF_SWEEP_LOG"], "a") as handle:
        handle.write(line + "\n")


class CountingLLM(BaseLLM):
    def __init__(self, checkpoint: str, batch_size: int = 8) -> None:
        self.name = Path(checkpoint).name
        if os.environ.get("EF_SWEEP_STOP_AT") == self.name:
            os.kill(os.getpid(), signal.SIGTERM)
        if (Path(checkpoint) / "BROKEN").exists():
            raise RuntimeError("the weights are corrupt")
        self.bias = hashlib.sha256((Path(checkpoint) / "config.json").read_bytes()).hexdigest()
        _log(f"load {self.name}")

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        out = []
        for r in requests:
            _log(f"score {self.name} {r.context!r} {r.continuation!r}")
            digest = hashlib.sha256((self.bias + r.context + r.continuation).encode()).hexdigest()
            out.append(LoglikelihoodResult(-int(digest[:6], 16) / 1e6, False, 1))
        return out

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        for r in requests:
            _log(f"generate {self.name} {r.context!r}")
        return [" " + r.context.rsplit(":", 1)[-1].split("->")[0].strip() for r in requests]
