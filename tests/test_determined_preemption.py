"""A preempted trial: Determined's own Core API classes (PreemptContext long-polling a master on
127.0.0.1, the shared-filesystem checkpoint storage), a stop between batches, the partial bundle
saved as a checkpoint, and the trial resumed on a node without the files giving the results of an
uninterrupted run in the same W&B run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eval_framework import cleanup
from eval_framework.cli.determined_run import TrialRun, run_trial
from eval_framework.determined_trial import Trial
from eval_framework.invocation_config import build_configs
from eval_framework.runner import evaluate, plan_all
from eval_framework.sinks.publish import PublishOptions
from eval_framework.sinks.wandb_spec import WandbOptions
from tests.fakes.determined_master import FakeMaster, fake_master
from tests.wandb_log_reader import read_run, run_files

MODEL = """
import os
import urllib.request

from tests.fixtures.user_models import HashLLM


class PausedMidway(HashLLM):
    \"\"\"Asks the master to preempt its trial (as a pause in the web UI) at its Nth batch.\"\"\"

    batches = 0

    def loglikelihood(self, requests):
        at = int(os.environ.get("EF_PREEMPT_AT_BATCH", "0"))
        if at:
            PausedMidway.batches += 1
            if PausedMidway.batches == at:
                pause = os.environ["EF_FAKE_MASTER"] + "/test/preempt"
                urllib.request.urlopen(urllib.request.Request(pause, data=b"", method="POST"))
        return super().loglikelihood(requests)
"""


@pytest.fixture
def setting(tmp_path, monkeypatch) -> dict:
    models = tmp_path / "paused.py"
    models.write_text(MODEL)
    for name in ("DIR", "DATA_DIR", "CACHE_DIR", "CONFIG_DIR"):
        monkeypatch.setenv(f"WANDB_{name}", str(tmp_path / f"wandb-{name.lower()}"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("EF_TEST_SLEEP", "0.05")  # time for the watcher's long poll to hear the signal
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("EF_TEST_CALL_LOG", str(calls))
    return {"models": models, "calls": calls}


def _plans(setting: dict, out: Path) -> list:
    values = {"models": setting["models"], "llm_name": "PausedMidway", "num_samples": 12, "batch_size": 2,
              "output_dir": out, "task_name": None}  # fmt: skip
    return plan_all(build_configs({"tasks": ["tiny-letters"]}, values))


def _context(master: FakeMaster, storage_dir: Path):
    from determined import core
    from determined.common import api, storage

    dist = core.DummyDistributedContext()
    session = api.Session(master.url, "determined", "task-token", cert=None)
    return core.Context(
        distributed=dist,
        checkpoint=core.DummyCheckpointContext(dist, storage.SharedFSStorageManager(str(storage_dir))),
        preempt=core.PreemptContext(session, "alloc-1", dist, core.PreemptMode.ChiefOnly),
        train=core.DummyTrainContext(),
        searcher=core.DummySearcherContext(dist),
        profiler=core.DummyProfilerContext(),
    )


def _calls(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_preempted_trial_resumes_elsewhere_with_the_results_of_an_uninterrupted_one(
    setting, tmp_path, monkeypatch
):
    baseline = evaluate(_plans(setting, tmp_path / "baseline")[0].config)  # never stopped
    whole = _calls(setting["calls"])
    setting["calls"].unlink()
    out, storage_dir = tmp_path / "node-a" / "out", tmp_path / "checkpoints"
    sinks = PublishOptions(wandb=WandbOptions(project="evals", mode="offline"), hf=None)
    run = TrialRun(Trial({}, trial_id=7, experiment_id=3), None, None)

    monkeypatch.setenv("EF_PREEMPT_AT_BATCH", "2")
    with fake_master() as master:
        monkeypatch.setenv("EF_FAKE_MASTER", master.url)
        with _context(master, storage_dir) as context, pytest.raises(cleanup.Preempted) as stop:
            run_trial(run, _plans(setting, out), sinks, None, context=context)
        assert master.acks == ["/api/v1/allocations/alloc-1/signals/ack_preemption"]
    (storage_id,) = [p.name for p in storage_dir.iterdir()]
    assert f"checkpoint {storage_id}" in stop.value.reason
    assert stop.value.code == 0  # a clean exit: Determined resumes the trial
    (saved,) = [p for p in (storage_dir / storage_id).iterdir() if p.is_dir()]
    rows = (saved / "samples.jsonl").read_text().splitlines()
    assert 0 < len(rows) < 12  # the partial bundle
    (first_log,) = [read_run(p) for p in run_files(out / saved.name / "wandb")]
    assert first_log.preempting == 1  # the W&B run says it was preempted
    # the checkpoint's copy of that log was taken after the SDK's service wrote it out
    (saved_log,) = [read_run(p) for p in (saved / "wandb").rglob("offline-run-*/run-*.wandb")]
    assert saved_log.run is not None
    assert saved_log.preempting == 1
    before = _calls(setting["calls"])

    shutil.rmtree(tmp_path / "node-a")  # another node: none of the files
    monkeypatch.delenv("EF_PREEMPT_AT_BATCH")
    resumed = TrialRun(Trial({}, trial_id=7, experiment_id=3, latest_checkpoint=storage_id), None, None)
    out_b = tmp_path / "node-b" / "out"
    with fake_master() as master, _context(master, storage_dir) as context:
        run_trial(resumed, _plans(setting, out_b), sinks, None, context=context)
    bundle = out_b / saved.name
    results = json.loads((bundle / "results.json").read_text())
    environment = json.loads((bundle / "metadata.json").read_text())["environment"]
    assert environment["cluster"] == {"determined_trial_id": 7, "determined_experiment_id": 3}
    assert results["metrics"] == json.loads((baseline.bundle_dir / "results.json").read_text())["metrics"]
    # the two runs together score at most the batch in flight twice (2 samples x 4 choices)
    assert before < whole
    assert _calls(setting["calls"]) - whole <= 8
    # the id each offline log holds (a directory name may carry a suffix for runs started in
    # the same second)
    logs = run_files(bundle / "wandb")
    assert len(logs) == 2  # the preempted run's log came back with the checkpoint
    run_ids = {read_run(p).run.run_id for p in logs}
    assert len(run_ids) == 1  # one W&B run, continued
