"""The fault suite: the installed ``eval_framework`` command, run in subprocesses as a user runs it,
fed bad input and faults. For every case it checks the documented exit code, that stderr is
exactly the promised line(s) with no traceback, that the line says what to do, and that a finished
bundle already in the same output directory is byte-identical afterwards and still reused.

Every subprocess points W&B and the Hugging Face Hub at loopback addresses nobody listens on
unless a case starts a fake server, so no case can reach the network.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fakes.wandb_http import refused_url
from tests.registry.conftest import s3, s3_server, wandb_http  # noqa: F401  (for the registry cases)

#: The console script pip installed next to this interpreter: the command users type.
CLI = str(Path(sys.executable).with_name("eval_framework"))
FIXTURES = Path(__file__).parents[1] / "fixtures"

#: Words of advice; every error line must contain one (it says what to do).
ADVICE = ("rerun", "retry", "check", "pass", "use ", "set ", "fix", "install", "save it", "free space",
          "sync", "see ", "write ", "delete", "copy", "drop", "edit", "choose", "move", "wait", "upgrade",
          "finish the export", "run 'eval_framework tasks'")  # fmt: skip

MODELS = """\
from eval_framework import BaseLLM
from user_models import HashLLM  # a sibling module, imported as its author expects


class Configurable(HashLLM):
    \"\"\"Takes result-changing arguments whose names contain secret-looking words.\"\"\"

    def __init__(self, max_tokens: int = 4, add_bos_token: bool = False, api_key: str | None = None,
                 batch_size: int = 8) -> None:
        super().__init__(bias=f"{max_tokens}-{add_bos_token}", batch_size=batch_size, api_key=api_key)


class Helper:
    pass
"""


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@dataclass
class Workspace:
    """A user's directory: models, a task over local data, and an output dir holding one finished
    evaluation (the *keeper*) that no fault may change."""

    root: Path
    out: Path
    keeper: Path
    env: dict[str, str]
    snapshot: dict[str, bytes] = field(default_factory=dict)

    KEEPER_ARGS = ("--models", "models.py", "--llm-name", "HashLLM", "--task-name", "letters.yaml")

    def environment(self, changes: dict[str, str | None] | None) -> dict[str, str]:
        """The workspace's environment with ``changes`` (None removes a variable)."""
        env = dict(self.env)
        for name, value in (changes or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def run(
        self,
        *args: object,
        env: dict[str, str | None] | None = None,
        timeout: float = 180,
        cwd: Path | None = None,
    ) -> Result:
        started = time.monotonic()
        proc = subprocess.run(
            [CLI, *(str(a) for a in args)], cwd=cwd or self.root, env=self.environment(env),
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def start(self, *args: object, env: dict[str, str | None] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [CLI, *(str(a) for a in args)], cwd=self.root, env=self.environment(env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def evaluate(self, *extra: object, env: dict[str, str | None] | None = None) -> Result:
        """The keeper's command with more flags (``--num-samples 10`` makes another evaluation)."""
        return self.run(*self.KEEPER_ARGS, "--output-dir", self.out, *extra, env=env)

    def command(self, *changes: object) -> list[object]:
        """The keeper's command with ``--flag value`` pairs replaced, or added when absent."""
        args: list[object] = [*self.KEEPER_ARGS, "--output-dir", self.out]
        for flag, value in zip(changes[::2], changes[1::2], strict=True):
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        return args

    def bundle(self, *args: object) -> Path:
        """A second finished evaluation beside the keeper (``args`` make it another one), made for a
        case to damage or replace."""
        before = {p.name for p in self.out.iterdir()}
        result = self.evaluate(*args)
        assert result.code == 0, result.err
        (found,) = [p for p in self.out.iterdir() if p.is_dir() and p.name not in before]
        return found

    def keeper_intact(self) -> None:
        """Byte-identical, and still recognised as finished: the rerun reuses it."""
        assert _snapshot(self.keeper) == self.snapshot, "the finished bundle was changed"
        again = self.run(*self.KEEPER_ARGS, "--output-dir", self.out)
        assert again.code == 0, again.err
        assert "reusing" in again.err.lower(), again.err
        assert _snapshot(self.keeper) == self.snapshot


def _snapshot(bundle: Path) -> dict[str, bytes]:
    return {str(p.relative_to(bundle)): p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()}


def expect(result: Result, code: int, *says: str, lines: int = 1) -> str:
    """The documented exit code; exactly ``lines`` stderr lines, no traceback; each of ``says``;
    an error line that says what to do. Returns the last line."""
    assert result.code == code, f"exit {result.code}, expected {code}: {result.err}"
    assert "Traceback" not in result.err, result.err
    assert "Logging error" not in result.err, result.err
    assert len(result.lines) == lines, result.err
    last = result.lines[-1] if result.lines else ""
    for needle in says:
        assert needle in result.err, f"{needle!r} not in: {result.err}"
    if code != 0:
        assert last.startswith("error: "), last
        assert any(word in last for word in ADVICE), f"says nothing to do: {last}"
    return last


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fault-template")
    shutil.copy(FIXTURES / "user_models.py", root / "user_models.py")
    (root / "models.py").write_text(MODELS)
    (root / "letters").mkdir()
    rows = [{"q": f"copy: {i:02d} ->", "options": ["a", "b", "c"], "gold": i % 3, "kind": "ab"[i % 2]}
            for i in range(40)]  # fmt: skip
    (root / "letters" / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "letters" / "shots.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:10]))
    (root / "letters.yaml").write_text(
        "name: letters\ndata:\n  eval: letters/eval.jsonl\n  fewshot: letters/shots.jsonl\n"
        "prompt: '{q}'\nchoices: options\ntarget: gold\nsubject: kind\n"
    )
    env = _env(root)
    proc = subprocess.run([CLI, *Workspace.KEEPER_ARGS, "--output-dir", "out"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return root


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "HF_", "AWS_", "EF_TEST_"))}
    env.pop("EVAL_FRAMEWORK_DEBUG", None)
    env.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(root / ".hf"),
        HF_ENDPOINT=refused_url(), WANDB_BASE_URL=refused_url(), WANDB_MODE="offline", WANDB_SILENT="true",
        WANDB_CONFIG_DIR=str(root / ".wandb-config"), WANDB_DATA_DIR=str(root / ".wandb-data"),
        WANDB_CACHE_DIR=str(root / ".wandb-cache"), NETRC=str(root / ".no-netrc"),
        EVAL_FRAMEWORK_CACHE_DIR=str(root / ".cache"), PYTHONDONTWRITEBYTECODE="1",
    )  # fmt: skip
    return env


@pytest.fixture
def ws(_template: Path, tmp_path: Path) -> Iterator[Workspace]:
    root = tmp_path / "ws"
    shutil.copytree(_template, root, symlinks=True)
    out = root / "out"
    (keeper,) = [p for p in out.iterdir() if p.is_dir()]
    workspace = Workspace(root, out, keeper, _env(root))
    workspace.snapshot = _snapshot(keeper)
    return workspace


def signal_when(
    proc: subprocess.Popen[str], ready: Callable[[], bool], sig: int, limit: float = 60
) -> Result:
    """Send ``sig`` once ``ready()`` holds (the process reached the phase under test)."""
    started = time.monotonic()
    while time.monotonic() - started < limit and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, "the process ended before the phase under test"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return Result(proc.returncode, out, err, time.monotonic() - started)


def has_rows(directory: Path, pattern: str = "*") -> bool:
    return any(p.stat().st_size > 0 for p in directory.glob(f"{pattern}/samples.jsonl"))


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
