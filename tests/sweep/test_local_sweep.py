"""Sweeping local checkpoint folders end to end: one model load per version, finished evaluations
reused without loading, a stop between versions resumed, shards, and a broken checkpoint that does
not stop the others."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

MODELS = Path(__file__).parent / "sweep_models.py"
STEPS = ("step-1", "step-2", "step-10", "step-20")
TASKS = ("--task-name", "tiny-letters,tiny-letters-gen", "--num-samples", "6")


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs" / "a"
    for step in STEPS:
        (root / step).mkdir(parents=True)
        (root / step / "config.json").write_text(json.dumps({"step": step}))
    monkeypatch.setenv("EF_SWEEP_LOG", str(tmp_path / "model.log"))
    return root


def _sweep(cli, *extra: str):
    return cli("sweep", "runs/a/step-*", "--models", MODELS, "--llm-name", "CountingLLM", *TASKS,
               "--output-dir", "out", *extra)  # fmt: skip


def _log(tmp_path: Path) -> list[str]:
    path = tmp_path / "model.log"
    return path.read_text().splitlines() if path.exists() else []


def _bundles(tmp_path: Path) -> dict[str, list[str]]:
    """Complete bundles by checkpoint directory name: the tasks evaluated on it."""
    found: dict[str, list[str]] = {}
    for meta_path in sorted((tmp_path / "out").glob("*/metadata.json")):
        meta = json.loads(meta_path.read_text())
        assert meta["status"] == "complete", meta_path
        name = Path(meta["config"]["llm_args"]["checkpoint"]).name
        found.setdefault(name, []).append(meta["task"]["name"])
    return found


def test_a_sweep_loads_each_version_once_and_a_rerun_loads_none(cli, runs, tmp_path):
    result = _sweep(cli)
    assert result.code == 0, result.err
    loads = [line for line in _log(tmp_path) if line.startswith("load")]
    assert loads == [f"load {s}" for s in STEPS]  # oldest first (natural order), once each
    assert {k: sorted(v) for k, v in _bundles(tmp_path).items()} == {
        s: ["tiny-letters", "tiny-letters-gen"] for s in STEPS
    }
    assert "Sweep: 4 version(s) x 2 task(s): 8 evaluated" in result.out
    assert "version 3/4 runs/a/step-10: tiny-letters acc" in result.err  # the progress, piped
    before = _log(tmp_path)
    again = _sweep(cli)
    assert again.code == 0, again.err
    assert _log(tmp_path) == before  # nothing loaded, nothing scored
    assert "8 reused" in again.out


def test_a_sweep_stopped_between_versions_resumes_where_it_stopped(cli, runs, tmp_path, monkeypatch):
    monkeypatch.setenv("EF_SWEEP_STOP_AT", "step-10")  # SIGTERM as the third version loads
    stopped = _sweep(cli)
    assert stopped.code == 143, stopped.err
    assert "stopped by SIGTERM" in stopped.err
    assert "rerun the same command to resume" in stopped.err
    assert sorted(_bundles(tmp_path)) == ["step-1", "step-2"]
    monkeypatch.delenv("EF_SWEEP_STOP_AT")
    resumed = _sweep(cli)
    assert resumed.code == 0, resumed.err
    assert "4 evaluated, 4 reused" in resumed.out
    log = _log(tmp_path)
    # each version's model loaded once over both runs, each sample of each (version, task) scored once
    assert Counter(line for line in log if line.startswith("load")) == {f"load {s}": 1 for s in STEPS}
    scored = [line for line in log if not line.startswith("load")]
    assert scored
    assert len(scored) == len(set(scored))
    assert len(_bundles(tmp_path)) == len(STEPS)


def test_a_broken_checkpoint_fails_alone_and_the_sweep_exits_with_its_code(cli, runs, tmp_path):
    (runs / "step-2" / "BROKEN").write_text("")
    result = _sweep(cli)
    assert result.code == 3, result.err  # a model error
    assert sorted(_bundles(tmp_path)) == ["step-1", "step-10", "step-20"]  # the others went on
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("error: runs/a/step-2 failed: loading model CountingLLM failed"), last
    assert "the weights are corrupt" in last
    assert "rerun the same command" in last
    assert "6 evaluated, 1 failed, 1 not run" in result.out  # its second task did not run
    (runs / "step-2" / "BROKEN").unlink()
    fixed = _sweep(cli)
    assert fixed.code == 0, fixed.err
    assert "2 evaluated, 6 reused" in fixed.out


def test_shards_split_the_versions_among_machines(cli, runs, tmp_path):
    for shard in ("0/3", "1/3", "2/3"):
        result = _sweep(cli, "--shard", shard)
        assert result.code == 0, result.err
    loads = [line for line in _log(tmp_path) if line.startswith("load")]
    assert sorted(loads) == sorted(f"load {s}" for s in STEPS)  # every version once, over the shards
    assert len(_bundles(tmp_path)) == len(STEPS)
    empty = _sweep(cli, "--versions", "last:2", "--shard", "2/3")
    assert empty.code == 0, empty.err
    assert "holds none of the 4 versions" in empty.err


def test_selection_and_every_choose_what_is_evaluated(cli, runs, tmp_path):
    result = _sweep(cli, "--versions", "since:step-2", "--every", "2")
    assert result.code == 0, result.err
    # since:step-2 -> step-2 step-10 step-20 -> every 2nd from the oldest, newest kept: step-2 step-20
    assert sorted(_bundles(tmp_path)) == ["step-2", "step-20"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--versions", "v3-v7"), 2, "invalid --versions 'v3-v7'"),
        (("--versions", "step-30..step-40"), 2, "'step-30' matches no version"),
        (("--shard", "3/2"), 2, "invalid --shard '3/2'"),
        (("--every", "0"), 2, "invalid --every 0"),
        (("--llm-args", "checkpoint=x"), 2, "a sweep's argument names them all"),
        (("--llm-args", "bogus=1"), 2, "bogus"),  # refused as the first version is planned
        (("--task-name", "no-such-task"), 4, "no-such-task"),
    ],
)
def test_bad_input_is_one_line_and_creates_nothing(cli, runs, tmp_path, args, code, message):
    result = _sweep(cli, *args)
    assert result.code == code, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert message in lines[0]
    assert not (tmp_path / "out").exists()
    assert _log(tmp_path) == []


def test_a_glob_that_matches_nothing(cli, tmp_path):
    result = cli("sweep", "runs/*/step-*", "--task-name", "tiny-letters")
    assert result.code == 2
    assert "no checkpoint directories match 'runs/*/step-*'" in result.err


def test_print_grid_is_one_trial_per_version(cli, runs, tmp_path):
    import yaml

    from eval_framework.determined_hparams import load_hparams

    result = _sweep(cli, "--every", "2", "--print-grid", "--llm-args", "temperature=0,api_key=s3cret")
    assert result.code == 0, result.err
    assert "s3cret" not in result.out
    hparams = yaml.safe_load(result.out)["hyperparameters"]
    grid = hparams["llm_args"]["checkpoint"]
    assert grid == {"type": "categorical", "vals": ["runs/a/step-1", "runs/a/step-10", "runs/a/step-20"]}
    for value in grid["vals"]:  # each trial's hyperparameters, as Determined passes them
        trial = {**hparams, "llm_args": {**hparams["llm_args"], "checkpoint": value}}
        loaded = load_hparams(trial)
        assert loaded.llm_args == {"temperature": 0, "checkpoint": value}
        assert [t.task_name for t in loaded.task_args or []] == ["tiny-letters", "tiny-letters-gen"]
    assert not (tmp_path / "out").exists()


def test_each_finished_evaluation_is_published_to_the_sinks(cli, runs, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)  # no key: logged offline into each bundle
    result = _sweep(cli, "--versions", "last:2", "--task-name", "tiny-letters", "--wandb-project", "p")
    assert result.code == 0, result.err
    ledgers = sorted((tmp_path / "out").glob("*/exports.jsonl"))
    assert len(ledgers) == 4  # 2 versions x 2 tasks, each logged once
    for ledger in ledgers:
        (entry,) = [json.loads(line) for line in ledger.read_text().splitlines()]
        assert entry["destination"] == "wandb"
        assert entry["status"] == "offline"


def test_a_folder_with_the_same_files_as_another_says_whose_results_it_shares(cli, tmp_path):
    """A trainer's final/ folder is often a copy of its last step: the files are the evaluation's
    identity, so one bundle serves both, and the sweep says so instead of losing a version."""
    import shutil

    from eval_framework.embedded import checkpoint_dir

    for name, shipped in (("step-1", "v1"), ("step-2", "v2"), ("step-3", "v2")):  # step-3: step-2's files
        shutil.copytree(checkpoint_dir(shipped), tmp_path / "runs" / name)
    result = cli(
        "sweep", "runs/step-*", "--task-name", "tiny-letters", "--num-samples", "4", "--output-dir", "out"
    )
    assert result.code == 0, result.err
    lines = {x.split(":")[0]: x for x in result.err.splitlines() if x.startswith("version ")}
    assert "the same files" not in lines["version 2/3 runs/step-2"]
    assert lines["version 3/3 runs/step-3"].endswith(
        "(reused); the same files as runs/step-2, whose evaluations these are (one bundle for both: compare "
        "shows it once)"
    )
    assert len(list((tmp_path / "out").glob("*/metadata.json"))) == 2
