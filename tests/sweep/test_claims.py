"""Claim files: created atomically, refused while their heartbeat is fresh, taken over by exactly one
of several racing claimants once stale (or left by a dead process of this host), released."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from eval_framework.sweep.claims import Claim, ClaimStore, Holder


def _age(path: Path, seconds: float) -> None:
    """Make the claim's last heartbeat ``seconds`` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def _dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _foreign_claim(store: ClaimStore, key: str, host: str, pid: int) -> Path:
    store.directory.mkdir(parents=True, exist_ok=True)
    path = store.path(key)
    record = {"host": host, "pid": pid, "started": "2026-01-01T00:00:00+00:00", "token": "theirs"}
    path.write_text(json.dumps(record))
    return path


def test_a_claim_is_created_once_and_refused_to_others_while_fresh(tmp_path):
    store = ClaimStore(tmp_path / ".claims" / "tiny", stale_s=60)
    first = store.try_claim("v3")
    assert isinstance(first, Claim)
    record = json.loads(store.path("v3").read_text())
    assert record["host"] == socket.gethostname()
    assert record["pid"] == os.getpid()
    assert record["token"] == first.token
    assert record["started"]
    second = ClaimStore(store.directory, stale_s=60).try_claim("v3")  # another watcher
    assert isinstance(second, Holder)
    assert second.token == first.token
    assert second.pid == os.getpid()
    assert f"host {socket.gethostname()} (pid {os.getpid()}" in second.shown
    first.release()
    assert not store.path("v3").exists()
    third = store.try_claim("v3")  # free again
    assert isinstance(third, Claim)
    third.release()


def test_the_heartbeat_keeps_a_claim_fresh(tmp_path):
    store = ClaimStore(tmp_path, stale_s=0.6)  # a beat every 0.1 s
    claim = store.try_claim("v0")
    assert isinstance(claim, Claim)
    try:
        _age(claim.path, 30)  # as if the watcher had been silent for long
        deadline = time.time() + 10
        while time.time() - claim.path.stat().st_mtime > 5 and time.time() < deadline:
            time.sleep(0.05)
        holder = store.holder("v0")
        assert holder is not None
        assert holder.age_s < 5
        assert isinstance(ClaimStore(tmp_path, stale_s=0.6).try_claim("v0"), Holder)
    finally:
        claim.release()


@pytest.mark.parametrize("round_", range(20))
def test_a_stale_claim_is_taken_over_by_exactly_one_of_racing_watchers(tmp_path, round_):
    store = ClaimStore(tmp_path, stale_s=60)
    _age(_foreign_claim(store, "v1", "elsewhere", 4242), 600)
    racers = 8
    barrier = threading.Barrier(racers)
    got: list[Claim | Holder] = []
    lock = threading.Lock()

    def race() -> None:
        mine = ClaimStore(tmp_path, stale_s=60)
        barrier.wait()
        result = mine.try_claim("v1")
        with lock:
            got.append(result)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = [g for g in got if isinstance(g, Claim)]
    assert len(got) == racers
    assert len(winners) == 1, got
    holder = store.holder("v1")
    assert holder is not None
    assert holder.token == winners[0].token
    assert all(isinstance(g, Holder) for g in got if g is not winners[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1.json"]  # no takeover lock left
    winners[0].release()


def test_a_dead_process_of_this_host_loses_its_claim_after_two_missed_beats(tmp_path):
    store = ClaimStore(tmp_path, stale_s=60)  # a beat every 10 s
    path = _foreign_claim(store, "v2", socket.gethostname(), _dead_pid())
    assert isinstance(store.try_claim("v2"), Holder)  # fresh: maybe not dead, just restarted
    _age(path, 25)
    claim = store.try_claim("v2")
    assert isinstance(claim, Claim)
    assert claim.took_over is not None
    assert claim.took_over.token == "theirs"
    claim.release()


def test_a_live_claim_of_another_host_is_kept_until_stale(tmp_path):
    store = ClaimStore(tmp_path, stale_s=60)
    path = _foreign_claim(store, "v2", "other-host", _dead_pid())  # its pid means nothing here
    _age(path, 25)
    holder = store.try_claim("v2")
    assert isinstance(holder, Holder)
    assert holder.host == "other-host"
    _age(path, 61)
    claim = store.try_claim("v2")
    assert isinstance(claim, Claim)
    claim.release()


def test_release_leaves_a_claim_taken_over_meanwhile(tmp_path):
    store = ClaimStore(tmp_path, stale_s=60)
    mine = store.try_claim("v4")
    assert isinstance(mine, Claim)
    mine._stop.set()  # as if this watcher had hung: its heartbeat stopped
    _age(mine.path, 600)
    theirs = ClaimStore(tmp_path, stale_s=60).try_claim("v4")
    assert isinstance(theirs, Claim)
    assert not mine.refresh()
    assert mine.lost
    mine.release()
    holder = store.holder("v4")
    assert holder is not None
    assert holder.token == theirs.token
    theirs.release()
    assert store.holder("v4") is None


def test_failures_are_counted_per_content(tmp_path):
    store = ClaimStore(tmp_path / "claims")
    store.directory.mkdir()
    assert store.failures("v5") == 0
    assert store.record_failure("v5", "loading model failed", "abc") == 1
    assert store.record_failure("v5", "loading model failed", "abc") == 2
    assert store.failures("v5", "abc") == 2
    assert store.failures("v5", "changed") == 0  # a checkpoint rewritten since starts again
    store.clear_failures("v5")
    assert store.failures("v5", "abc") == 0
