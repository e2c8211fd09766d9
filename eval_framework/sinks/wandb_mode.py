"""Which W&B mode a log runs in: online when a usable key is set and the server has not rejected
it; offline otherwise, said once per process rather than once per bundle."""

from __future__ import annotations

import hashlib
import logging
import os

from eval_framework import wandb_server
from eval_framework.errors import ConfigError
from eval_framework.sinks.wandb_spec import Mode, WandbOptions

log = logging.getLogger(__name__)


NO_KEY = ("no W&B API key found (WANDB_API_KEY in the environment or .env): logging offline; "
          "results stay local until synced")  # fmt: skip
KEY_REJECTED = ("the server rejected the API key (check WANDB_API_KEY): logging offline; results stay "
                "local until synced")  # fmt: skip


def key_malformed(problem: str) -> str:
    return (f"WANDB_API_KEY is malformed ({problem.rstrip('.')}; no server was asked): logging offline; "
            "copy the key again from your W&B settings page")  # fmt: skip


# Per process, so that uploading many bundles says it once and asks the server once: keys the
# server rejected (as hashes: a corrected key is tried again) and warnings already given.
rejected_keys: set[str] = set()
said: set[str] = set()


def key_hash() -> str:
    return hashlib.sha256((wandb_server.api_key() or "").encode()).hexdigest()


def say_once(message: str) -> None:
    """Warn about the W&B setup once per process, not once per bundle."""
    if message not in said:
        said.add(message)
        log.warning("W&B: %s", message)


def choose_mode(options: WandbOptions) -> tuple[Mode, str | None]:
    """The mode to run in, and a message when it is not what was asked for."""
    wanted = options.mode or os.environ.get("WANDB_MODE") or "online"
    if wanted not in ("online", "offline", "disabled"):
        source = "--wandb-mode" if options.mode else "WANDB_MODE (environment or .env)"
        raise ConfigError(f"{source} {wanted!r} is not a mode; use online, offline or disabled")
    if wanted != "online":
        return wanted, None  # type: ignore[return-value]
    key = wandb_server.api_key()
    if key is None:
        return "offline", NO_KEY
    problem = wandb_server.key_problem(key)
    if problem:
        return "offline", key_malformed(problem)
    if key_hash() in rejected_keys:
        return "offline", KEY_REJECTED
    return "online", None
