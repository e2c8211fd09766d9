"""A trial of several processes: every one enters Determined's Core API context with a real
``DistributedContext`` (its ZMQ links on 127.0.0.1), the chief alone evaluates, logs and writes,
and the others wait for it, whichever way it ends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval_framework.determined_trial import Trial, distributed_context
from eval_framework.errors import ConfigError

EXPERIMENT = """
name: two-processes
entrypoint: python3 -m determined.launch.torch_distributed -- eval_framework --context determined
resources: {{slots_per_trial: 2}}
hyperparameters:
  llm_name: embedded
  experiment_name: eval-two-processes
  wandb_project: trial-processes
  output_dir: out
  task_args: {{task_name: {task}, num_samples: 12}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(work: Path, rank: int, ports: tuple[int, int]) -> subprocess.Popen[str]:
    """One process of the trial, with the variables Determined's torch_distributed launcher sets."""
    env = {
        **os.environ,
        "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "0", "GROUP_WORLD_SIZE": "1",
        # Determined's own settings for its inter-process ports (free ones: tests run side by side)
        "INTER_TRAIN_PROCESS_COMM_PORT_1": str(ports[0]), "INTER_TRAIN_PROCESS_COMM_PORT_2": str(ports[1]),
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(work / f"wandb-{rank}"),
    }  # fmt: skip
    command = [sys.executable, "-m", "eval_framework", "--context", "determined", "--hparams", "exp.yaml"]
    return subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


Ended = tuple[int, str, str]


def _trial(tmp_path: Path, task: str) -> tuple[Ended, Ended, Path, bool]:
    """Both processes run to their end, the worker started first: (code, out, err) of each, and
    whether the chief's results were written when the worker ended."""
    work = tmp_path / "context"
    work.mkdir()
    (work / "exp.yaml").write_text(EXPERIMENT.format(task=task))
    ports = (_free_port(), _free_port())
    worker = _launch(work, 1, ports)
    time.sleep(0.5)
    chief = _launch(work, 0, ports)
    out, err = worker.communicate(timeout=240)
    written = any((work / "out").glob("*/results.json"))
    chief_out, chief_err = chief.communicate(timeout=60)
    return (chief.returncode, chief_out, chief_err), (worker.returncode, out, err), work, written


def _wandb_runs(work: Path) -> list[Path]:
    """The offline W&B runs anywhere under the trial's directory."""
    return list(work.glob("**/offline-run-*"))


def test_only_the_chief_evaluates_logs_and_writes(tmp_path):
    (code, _, err), (worker_code, worker_out, worker_err), work, written = _trial(tmp_path, "tiny-letters")
    assert code == 0, err
    assert worker_code == 0, worker_err
    assert "Process 1 of the trial's 2: the chief (process 0) evaluates" in worker_err
    assert "Process 0 of the trial's 2: joining the others" in err  # said before the wait for them
    assert "stopped early" not in worker_err
    assert "Determined validation metrics" in err
    assert "Determined validation metrics" not in worker_err
    assert worker_out == ""  # no results table: the worker evaluated nothing
    bundles = [p for p in (work / "out").iterdir() if (p / "results.json").is_file()]
    assert len(bundles) == 1  # written once, by the chief
    assert json.loads((bundles[0] / "metadata.json").read_text())["environment"]["cluster"] == {
        "determined": "local",
        "experiment_name": "eval-two-processes",
    }
    assert len(_wandb_runs(work)) == 1  # logged once, by the chief
    assert written  # the worker waited for the chief's end


def test_a_chief_that_fails_lets_the_others_go_and_its_error_is_the_trials(tmp_path):
    (code, _, err), (worker_code, _, worker_err), work, _ = _trial(tmp_path, "no-such-task")
    assert code == 4, err  # a task that cannot be found
    assert "unknown task 'no-such-task'" in err
    assert worker_code == 0, worker_err  # released, not hanging: the trial ends with the chief's error
    assert "Process 1: the chief (process 0) stopped early (its log says why)" in worker_err
    assert not (work / "out").exists() or not any((work / "out").glob("*/results.json"))


def test_launcher_variables_give_the_processes_and_a_lone_process_has_none():
    trial = Trial({}, local=True)
    assert distributed_context(trial, {}) is None  # one process off a cluster: core.init() makes its own
    torch_vars = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                  "GROUP_RANK": "0", "GROUP_WORLD_SIZE": "1"}  # fmt: skip
    os.environ.update(torch_vars)  # Determined's from_torch_distributed reads os.environ itself
    try:
        context = distributed_context(trial, torch_vars)
        assert (context.rank, context.size) == (0, 1)
        context.close()
    finally:
        for name in torch_vars:
            os.environ.pop(name)


def test_a_partial_launcher_environment_is_refused_naming_what_is_missing():
    with pytest.raises(ConfigError) as caught:
        distributed_context(Trial({}, local=True), {"RANK": "1", "WORLD_SIZE": "2"})
    message = str(caught.value)
    assert "RANK is set (1)" in message
    # what is missing, not what is there
    assert "for torch_distributed, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, GROUP_WORLD_SIZE;" in message
    assert "WORLD_SIZE, LOCAL_RANK" not in message
    assert "determined.launch.torch_distributed" in message


def test_one_process_holding_several_slots_gets_a_context_of_one():
    from determined import ClusterInfo, RendezvousInfo, TrialInfo

    trial_info = TrialInfo(
        trial_id=7, experiment_id=3, trial_seed=0, hparams={}, config={}, steps_completed=0,
        trial_run_id=1, debug=False, inter_node_network_interface=None,
    )  # fmt: skip
    info = ClusterInfo(
        master_url="http://127.0.0.1:1", cluster_id="c", agent_id="a", slot_ids=[0, 1], task_id="t",
        allocation_id="t.1", session_token="s", task_type="TRIAL", trial_info=trial_info,
        rendezvous_info=RendezvousInfo(["10.0.0.5"], container_rank=0, container_slot_counts=[2]),
    )  # fmt: skip
    context = distributed_context(Trial({}, 7, 3), {}, info)
    assert (context.rank, context.size) == (0, 1)
