"""Download progress: exact byte counts from worker threads, and the rich bar the CLI installs."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from rich.console import Console
from rich.file_proxy import FileProxy

from eval_framework import cleanup, reporting
from eval_framework.errors import DownloadError
from eval_framework.registry import download as dl
from eval_framework.registry import progress as progress_mod
from eval_framework.registry.download import download
from eval_framework.registry.manifest import ManifestEntry, TransientError
from eval_framework.registry.resolver import Resolver

PART = 1024
BIG = "model/big.safetensors"


class _Memory:
    """Serves entries from memory; ``fail_once`` ranges raise a transient error on first read."""

    def __init__(self, files: dict[str, bytes], fail_once: set[tuple[str, int]] | None = None) -> None:
        self.files, self.fail_once = files, set(fail_once or ())
        self.reads: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def read_range(self, entry: ManifestEntry, start: int, end: int) -> bytes:
        with self._lock:
            self.reads.append((entry.path, start))
            if (entry.path, start) in self.fail_once:
                self.fail_once.discard((entry.path, start))
                raise TransientError("HTTP 503")
        time.sleep(0.001)  # let worker threads overlap
        return self.files[entry.path][start : end + 1]


def _entry(path: str, data: bytes) -> ManifestEntry:
    return ManifestEntry(
        path, len(data), base64.b64encode(hashlib.md5(data).digest()).decode(), url="http://x"
    )


@pytest.fixture
def checkpoint(monkeypatch) -> tuple[list[ManifestEntry], dict[str, bytes]]:
    """Small files fetched whole, an empty one, and a large one fetched as 11 ranges."""
    monkeypatch.setattr(dl, "RETRY_WAIT_MAX", 0.0)
    monkeypatch.setattr(dl, "RANGED_THRESHOLD", 4 * PART)
    monkeypatch.setattr(dl, "PART_SIZE", PART)
    files = {"model/config.json": b'{"a": 1}', "model/tokenizer.json": os.urandom(3000),
             "model/empty.txt": b"", BIG: os.urandom(10 * PART + 7)}  # fmt: skip
    return [_entry(path, data) for path, data in files.items()], files


class _Recorder:
    """A deliberately non-atomic callback: concurrent calls would lose updates."""

    def __init__(self) -> None:
        self.increments: list[int] = []
        self.total = 0
        self.inside = 0
        self.overlapped = False

    def __call__(self, nbytes: int) -> None:
        self.inside += 1
        self.overlapped |= self.inside > 1
        seen = self.total
        time.sleep(0.0005)
        self.total = seen + nbytes
        self.increments.append(nbytes)
        self.inside -= 1


def test_increments_sum_to_bytes_needed_range_by_range(checkpoint, tmp_path):
    entries, files = checkpoint
    recorder, totals = _Recorder(), []
    plan = download(
        entries, tmp_path / "d", {"wandb": _Memory(files)}, progress=recorder, on_total=totals.append
    )
    assert totals == [plan.bytes_needed] == [sum(len(d) for d in files.values())]
    assert recorder.total == sum(recorder.increments) == plan.bytes_needed
    assert not recorder.overlapped  # calls from worker threads were serialised
    # The large file advanced range by range (10 full ranges and the tail), not once at the end.
    assert sorted(recorder.increments) == sorted([8, 3000] + [PART] * 10 + [7])
    for path, data in files.items():
        assert (tmp_path / "d" / path).read_bytes() == data


def test_a_retried_range_is_counted_once(checkpoint, tmp_path):
    entries, files = checkpoint
    source = _Memory(files, fail_once={(BIG, 3 * PART), ("model/tokenizer.json", 0)})
    recorder = _Recorder()
    plan = download(entries, tmp_path / "d", {"wandb": source}, progress=recorder)
    assert source.reads.count((BIG, 3 * PART)) == 2
    assert source.reads.count(("model/tokenizer.json", 0)) == 2
    assert sum(recorder.increments) == plan.bytes_needed == sum(len(d) for d in files.values())
    assert recorder.increments.count(PART) == 10


def test_a_failed_file_never_overcounts(checkpoint, tmp_path):
    entries, files = checkpoint
    source = _Memory(files, fail_once={(BIG, 2 * PART)})
    recorder = _Recorder()
    with pytest.raises(DownloadError, match="kept failing after 1 tries"):
        download(entries, tmp_path / "d", {"wandb": source}, attempts=1, progress=recorder)
    assert sum(recorder.increments) <= sum(len(d) for d in files.values()) - PART  # never the failed range


def test_files_already_present_are_not_reported(checkpoint, tmp_path):
    entries, files = checkpoint
    download(entries, tmp_path / "d", {"wandb": _Memory(files)})
    recorder, totals = _Recorder(), []
    plan = download(
        entries, tmp_path / "d", {"wandb": _Memory(files)}, progress=recorder, on_total=totals.append
    )
    assert plan.todo == []
    assert totals == [0]
    assert recorder.increments == []
    (tmp_path / "d" / "model" / "tokenizer.json").unlink()
    plan = download(entries, tmp_path / "d", {"wandb": _Memory(files)}, progress=recorder)
    assert [e.path for e in plan.todo] == ["model/tokenizer.json"]
    assert recorder.increments == [3000]


# ---- the rich bar -----------------------------------------------------------------------------


def _terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120)


def _output(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def _cursor_restored(out: str) -> bool:
    """The bar hid the cursor while drawing; it must be shown again afterwards."""
    return out.rfind("\x1b[?25h") > out.rfind("\x1b[?25l") >= 0


def test_bar_is_silent_when_stderr_is_not_a_terminal(checkpoint, tmp_path, monkeypatch):
    entries, files = checkpoint
    piped = Console(file=io.StringIO(), force_terminal=False)
    monkeypatch.setattr(reporting, "stderr", piped)  # the default console, as in CI logs
    with reporting.download_bar("llama-sft:v7") as bar:
        download(entries, tmp_path / "d", {"wandb": _Memory(files)}, progress=bar.advance, on_total=bar.start)
    assert _output(piped) == ""


def test_bar_draws_description_bytes_rate_and_eta_on_a_terminal():
    console = _terminal()
    with reporting.download_bar("llama-sft:v7", console=console) as bar:
        bar.start(10_000_000)
        for _ in range(3):
            bar.advance(2_000_000)
            time.sleep(0.02)
    out = _output(console)
    assert "llama-sft:v7" in out
    assert "6.0/10.0 MB" in out
    assert re.search(r"\d+(\.\d+)? [kMG]?B/s", out)  # transfer rate
    assert re.search(r"\d+:\d\d:\d\d", out)  # time remaining
    assert _cursor_restored(out)
    assert not isinstance(sys.stderr, FileProxy)


def test_bar_draws_nothing_when_nothing_is_fetched():
    console = _terminal()
    with reporting.download_bar("llama-sft:v7", console=console) as bar:
        bar.start(0)
    assert _output(console) == ""


def test_bar_nests_under_the_evaluation_bar(monkeypatch):
    console = _terminal()
    monkeypatch.setattr(reporting, "stderr", console)
    with reporting.progress_bar("hf · mmlu") as update:
        update(1, 10)
        with reporting.download_bar("llama-sft:v7") as bar:
            bar.start(1000)
            bar.advance(500)
            time.sleep(0.3)  # a nested bar is drawn by the outer one's refresh thread (10 per second)
        update(2, 10)
    out = _output(console)
    assert "llama-sft:v7" in out
    assert "hf · mmlu" in out
    assert _cursor_restored(out)
    assert console._live_stack == []


@contextlib.contextmanager
def _stop_flag_reset() -> Iterator[None]:
    try:
        yield
    finally:
        cleanup.stopping.clear()


class _Failing(_Memory):
    def __init__(self, files: dict[str, bytes], how: str) -> None:
        super().__init__(files)
        self.how = how

    def read_range(self, entry: ManifestEntry, start: int, end: int) -> bytes:
        if entry.path == BIG and start == 4 * PART:
            if self.how == "error":
                raise DownloadError("S3 denied access (403)")
            os.kill(os.getpid(), signal.SIGTERM)  # the scheduler stops the job mid-file
            time.sleep(0.05)
        return super().read_range(entry, start, end)


@pytest.mark.parametrize(("how", "raised"), [("error", DownloadError), ("sigterm", SystemExit)])
def test_bar_is_closed_however_the_download_ends(checkpoint, tmp_path, how, raised):
    entries, files = checkpoint
    console = _terminal()
    with (
        _stop_flag_reset(),
        cleanup.command_mode(),
        pytest.raises(raised) as info,
        reporting.download_bar("llama-sft:v7", console=console) as bar,
    ):
        download(entries, tmp_path / "d", {"wandb": _Failing(files, how)}, workers=2,
                 progress=bar.advance, on_total=bar.start)  # fmt: skip
    if how == "sigterm":
        assert info.value.code == 143
    out = _output(console)
    assert "llama-sft:v7" in out
    assert _cursor_restored(out)
    assert console._live_stack == []
    assert not isinstance(sys.stderr, FileProxy)
    assert not (tmp_path / "d" / BIG).exists()
    assert not list((tmp_path / "d").rglob(".*part-*"))


# ---- the resolver's route: the process-wide factory -------------------------------------------


class _RecordingBar:
    def __init__(self, description: str) -> None:
        self.description = description
        self.totals: list[int] = []
        self.increments: list[int] = []
        self.closed = False

    def start(self, total: int) -> None:
        self.totals.append(total)

    def advance(self, nbytes: int) -> None:
        self.increments.append(nbytes)


@pytest.fixture
def bars() -> Iterator[list[_RecordingBar]]:
    opened: list[_RecordingBar] = []

    @contextlib.contextmanager
    def factory(description: str) -> Iterator[_RecordingBar]:
        bar = _RecordingBar(description)
        opened.append(bar)
        try:
            yield bar
        finally:
            bar.closed = True

    progress_mod.set_download_bar_factory(factory)
    try:
        yield opened
    finally:
        progress_mod.set_download_bar_factory(None)


def _register(fake) -> dict[str, bytes]:
    """A checkpoint whose weights (3 MiB) are fetched as ranges over loopback (see conftest)."""
    files = {
        "hf/config.json": b'{"model_type": "tiny"}',
        "hf/model.safetensors": os.urandom(3 * 1024 * 1024 + 5),
    }
    fake.add_version("wandb-registry-model", "llama-sft", [fake.stored_file(p, d) for p, d in files.items()],
                     aliases=("prod",))  # fmt: skip
    return files


def test_resolve_reports_to_the_installed_factory(fake_wandb, bars, tmp_path, monkeypatch):
    files = _register(fake_wandb)
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    with contextlib.ExitStack() as stack:
        resolved = Resolver().resolve("llama-sft:prod", stack)  # as the model backend calls it
    (bar,) = bars
    assert bar.description == f"llama-sft:{resolved.identity.version}"
    assert bar.closed
    assert bar.totals == [resolved.downloaded_bytes] == [sum(len(d) for d in files.values())]
    assert sum(bar.increments) == resolved.downloaded_bytes
    assert len(bar.increments) > len(files)
    with contextlib.ExitStack() as stack:
        Resolver().resolve("llama-sft:prod", stack)  # complete and verified: nothing transferred
    assert bars[1].totals == [0]
    assert bars[1].increments == []
    assert bars[1].closed


def test_an_explicit_callback_bypasses_the_factory(fake_wandb, bars, tmp_path, monkeypatch):
    files = _register(fake_wandb)
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    got: list[int] = []
    with contextlib.ExitStack() as stack:
        Resolver().resolve("llama-sft:prod", stack, progress=got.append)
    assert bars == []
    assert sum(got) == sum(len(d) for d in files.values())


def test_resolve_draws_the_rich_bar_when_the_cli_installs_it(fake_wandb, tmp_path, monkeypatch):
    _register(fake_wandb)
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    console = _terminal()
    progress_mod.set_download_bar_factory(functools.partial(reporting.download_bar, console=console))
    try:
        with contextlib.ExitStack() as stack:
            Resolver().resolve("llama-sft:prod", stack)
    finally:
        progress_mod.set_download_bar_factory(None)
    out = _output(console)
    assert "llama-sft:v0" in out
    assert "3.1/3.1 MB" in out
    assert _cursor_restored(out)


def test_the_default_factory_is_silent(capsys):
    with progress_mod.download_bar("llama-sft:v7") as bar:
        bar.start(10)
        bar.advance(10)
    assert capsys.readouterr() == ("", "")
