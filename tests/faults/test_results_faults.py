"""Class 1: results that could be silently wrong, lost or stranded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.faults.conftest import Workspace, expect, has_rows, signal_when


def _new_bundles(ws: Workspace, before: set[str]) -> list[str]:
    return sorted({p.name for p in ws.out.iterdir() if p.is_dir() and not p.name.startswith(".")} - before)


def _names(ws: Workspace) -> set[str]:
    return {p.name for p in ws.out.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _arc_copy(root, question: str) -> None:
    row = {"id": "q1", "question": question, "answerKey": "B",
           "choices": {"text": ["Moon", "Mars", "Sun"], "label": ["A", "B", "C"]}}  # fmt: skip
    root.mkdir(parents=True)
    (root / "test.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({**row, "id": "q2"}) + "\n")
    (root / "train.jsonl").write_text(json.dumps({**row, "id": "s1"}) + "\n")


def test_two_local_copies_of_a_benchmark_are_two_evaluations(ws):
    _arc_copy(ws.root / "arc-a", "Which is a planet?")
    _arc_copy(ws.root / "arc-b", "Which is a moon?")
    args = (
        "--models",
        "models.py",
        "--llm-name",
        "HashLLM",
        "--task-name",
        "ARC-Easy",
        "--num-fewshot",
        "0",
        "--output-dir",
        ws.out,
    )
    before = _names(ws)
    expect(ws.run(*args, "--task-data-dir", "arc-a"), 0, lines=0)
    expect(ws.run(*args, "--task-data-dir", "arc-b"), 0, lines=0)  # not "reusing"
    assert len(_new_bundles(ws, before)) == 2
    ws.keeper_intact()


@pytest.mark.parametrize("change", ["template", "data", "fewshot"])
def test_an_edited_task_file_or_its_data_is_a_new_evaluation(ws, change):
    if change == "template":
        spec = ws.root / "letters.yaml"
        spec.write_text(spec.read_text().replace("prompt: '{q}'", "prompt: 'Q: {q}'"))
    else:
        data = ws.root / "letters" / ("eval.jsonl" if change == "data" else "shots.jsonl")
        data.write_text(data.read_text().replace('"gold": 0', '"gold": 1', 1))
    before = _names(ws)
    expect(ws.evaluate("--num-fewshot", "1"), 0, lines=0)
    expect(ws.evaluate(), 0, lines=0)  # the keeper's own command: not reused for edited input
    assert len(_new_bundles(ws, before)) == 2
    # Put everything back: then the keeper is reused as before.
    if change == "template":
        spec.write_text(spec.read_text().replace("prompt: 'Q: {q}'", "prompt: '{q}'"))
    else:
        data.write_text(data.read_text().replace('"gold": 1', '"gold": 0', 1))
    ws.keeper_intact()


def test_an_edited_model_class_is_a_new_evaluation(ws):
    models = ws.root / "user_models.py"
    models.write_text(models.read_text().replace("/ 1e6", "/ 1e5"))
    result = ws.evaluate()
    expect(result, 0, lines=0)
    assert "reusing" not in result.err.lower()
    models.write_text(models.read_text().replace("/ 1e5", "/ 1e6"))
    ws.keeper_intact()


def test_changed_checkpoint_weights_of_the_same_size_are_a_new_evaluation(ws, tiny_model_dir):
    import shutil

    ckpt = shutil.copytree(tiny_model_dir, ws.root / "ckpt")
    args = ("--llm-name", "hf", "--llm-args", "checkpoint=ckpt", "dtype=float32", "--task-name",
            "letters.yaml", "--output-dir", ws.out, "--num-samples", "4")  # fmt: skip
    expect(ws.run(*args), 0, lines=0)
    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    again = ws.run(*args)
    expect(again, 0, lines=0)
    assert "reusing" not in again.err.lower()
    ws.keeper_intact()


def test_result_changing_arguments_are_stored_unredacted_and_secrets_never(ws):
    secret = "sk-fault-suite-0123456789"
    result = ws.run("--models", "models.py", "--llm-name", "Configurable", "--llm-args", "max_tokens=8",
                    "add_bos_token=true", f"api_key={secret}", "--task-name", "letters.yaml", "--max-tokens",
                    "16", "--output-dir", ws.out)  # fmt: skip
    expect(result, 0, lines=0)
    (bundle,) = [p for p in ws.out.iterdir() if p.name.startswith("Configurable")]
    config = json.loads((bundle / "metadata.json").read_text())["config"]
    assert config["llm_args"] == {"max_tokens": 8, "add_bos_token": True, "api_key": "***"}
    assert config["max_tokens"] == 16
    for path in bundle.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    assert secret not in result.out + result.err
    ws.keeper_intact()


BAD_ROWS = {
    "a JSON list": lambda row: "[1, 2]",
    "an empty object": lambda row: "{}",
    "a JSON number": lambda row: "7",
    "a string index": lambda row: json.dumps({**row, "index": str(row["index"])}),
    "text scores": lambda row: json.dumps({**row, "scores": {"acc": "1", "acc_norm": "0"}}),
    "a row of another sample": lambda row: json.dumps({**row, "id": "elsewhere"}),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_a_bad_sample_row_is_named_set_aside_and_recomputed(ws, kind):
    bundle = ws.bundle("--num-samples", "10")
    path = bundle / "samples.jsonl"
    lines = path.read_text().splitlines()
    good = json.loads(lines[4])
    lines[4] = BAD_ROWS[kind](good)
    path.write_text("\n".join(lines) + "\n")
    result = ws.evaluate("--num-samples", "10")
    last = expect(result, 0, "samples.jsonl:5 is not a usable sample row", "recomputed")
    assert last.startswith("WARNING")
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == list(range(10))
    results = json.loads((bundle / "results.json").read_text())
    assert results["metrics"]["overall"]["acc"]["n"] == 10  # not 9: nothing dropped silently
    assert (bundle / "samples.rejected.jsonl").is_file()
    ws.keeper_intact()


@pytest.mark.parametrize("content", ["garbage{", "[]", '{"status": "complete"}'])
def test_a_damaged_metadata_file_is_refused_and_overwrite_repairs_it(ws, content):
    bundle = ws.bundle("--num-samples", "10")
    (bundle / "metadata.json").write_text(content)
    expect(ws.evaluate("--num-samples", "10"), 5, "metadata.json is damaged", "--overwrite")
    assert (bundle / "metadata.json").read_text() == content
    expect(ws.evaluate("--num-samples", "10", "--overwrite"), 0, lines=0)
    assert json.loads((bundle / "metadata.json").read_text())["status"] == "complete"
    ws.keeper_intact()


def _in_the_way(bundle: Path, what: str) -> Path:
    """Puts a directory where a bundle file belongs, or a file where a directory belongs."""
    if what == "bundle is a file":
        shutil.rmtree(bundle)
        bundle.write_text("not a bundle\n")
        return bundle
    if what == "lock is a directory":
        lock = bundle.parent / f".{bundle.name}.lock"
        lock.unlink(missing_ok=True)  # a lock file stays after a run; it is free while nobody holds it
        lock.mkdir()
        return lock
    target = bundle / what.split()[0]
    if what.startswith("wandb"):
        target.write_text("not a directory\n")
        return target
    target.unlink(missing_ok=True)
    target.mkdir()
    (target / "keep").write_text("a user's file\n")
    return target


FILE_SPOT = "is a directory (or other non-file) where a file of the bundle belongs; move it away"


@pytest.mark.parametrize(
    ("what", "says"),
    [
        ("samples.jsonl is a directory", FILE_SPOT),
        ("metadata.json is a directory", FILE_SPOT),
        ("results.json is a directory", FILE_SPOT),
        ("exports.jsonl is a directory", FILE_SPOT),
        ("eval.log is a directory", FILE_SPOT),
        ("wandb is a file", "is a file where a directory of the bundle belongs; move it away"),
        ("bundle is a file", "is a file where this evaluation's bundle directory belongs; move it away"),
        ("lock is a directory", "is a directory where the bundle's lock file belongs; move it away"),
    ],
)
def test_something_in_the_way_of_the_bundle_layout_is_named(ws, what, says):
    bundle = ws.bundle("--num-samples", "10")
    blocker = _in_the_way(bundle, what)
    expect(ws.evaluate("--num-samples", "10"), 5, says, str(blocker.name))
    expect(ws.evaluate("--num-samples", "10", "--overwrite"), 5, says)  # nothing of the user's is deleted
    if blocker.is_dir() and what != "lock is a directory":
        assert (blocker / "keep").read_text() == "a user's file\n"
    dry = ws.run("upload", ws.out, "--wandb-project", "evals", "--dry-run")
    assert dry.code == 0, dry.err
    assert "Traceback" not in dry.err, dry.err  # the other bundles are still listed
    assert f'"bundle": "{ws.keeper.resolve()}"' in dry.out, dry.out
    ws.keeper_intact()


@pytest.mark.parametrize("name", ["notes.md", ".eval.log.swp", "wandb/mynotes.txt", "wandb/offline-run-x"])
def test_overwrite_refuses_to_delete_files_it_did_not_write(ws, name):
    bundle = ws.bundle("--num-samples", "10")
    (bundle / name).parent.mkdir(exist_ok=True)
    (bundle / name).write_text("why this run matters\n")
    expect(ws.evaluate("--num-samples", "10", "--overwrite"), 5, f"--overwrite would delete {name}",
           "move them out of the bundle")  # fmt: skip
    assert (bundle / name).is_file()
    ws.keeper_intact()


def test_overwrite_of_a_symlinked_bundle_never_touches_the_link_target(ws):
    bundle = ws.bundle("--num-samples", "10")
    elsewhere = ws.root / "elsewhere"
    shutil.move(bundle, elsewhere)
    bundle.symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    expect(ws.evaluate("--num-samples", "10", "--overwrite"), 0, lines=0)
    expect(ws.evaluate("--num-samples", "10", "--overwrite"), 0, lines=0)  # a second time too
    assert sorted(p.name for p in elsewhere.iterdir()) == before
    assert bundle.is_dir()
    assert not [p for p in ws.out.iterdir() if p.name.endswith((".old", ".overwrite"))]
    ws.keeper_intact()


def test_a_results_file_of_the_wrong_shape_is_recomputed(ws):
    bundle = ws.bundle("--num-samples", "10")
    (bundle / "results.json").write_text('{"metrics": {"overall": []}}')
    expect(ws.evaluate("--num-samples", "10"), 0, "not a consistent finished evaluation", "completing it")
    assert json.loads((bundle / "results.json").read_text())["metrics"]["overall"]["acc"]["n"] == 10
    ws.keeper_intact()


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_overwrite_killed_keeps_the_old_bundle_authoritative(ws, sig):
    from tests.faults.conftest import SIGNALS, _snapshot

    bundle = ws.bundle("--num-fewshot", "1")  # 40 samples: two chunks of model calls
    before = _snapshot(bundle)
    proc = ws.start(*ws.KEEPER_ARGS, "--output-dir", ws.out, "--num-fewshot", "1", "--overwrite",
                    "--batch-size", "1", env={"EF_TEST_SLEEP": "2"})  # fmt: skip
    result = signal_when(proc, lambda: has_rows(ws.out, ".*.overwrite"), SIGNALS[sig])
    if sig == "SIGTERM":
        expect(result, 143, "stopped by SIGTERM", "rerun the same command")
    elif sig == "SIGINT":
        expect(result, 130, "interrupted", "rerun the same command")
    assert _snapshot(bundle) == before  # the old bundle is still the one in place, untouched
    reuse = ws.evaluate("--num-fewshot", "1")
    expect(reuse, 0, "reusing")
    assert _snapshot(bundle) == before
    expect(ws.evaluate("--num-fewshot", "1", "--overwrite"), 0, lines=0)  # resumes, then swaps
    same = [p.name for p in ws.out.iterdir() if "1shot" in p.name and not p.name.endswith(".lock")]
    assert same == [bundle.name]
    ws.keeper_intact()


def test_overwrite_refuses_to_drop_unsynced_offline_wandb_runs(ws):
    bundle = ws.bundle("--num-samples", "10")
    expect(ws.evaluate("--num-samples", "10", "--wandb-project", "evals", "--wandb-mode", "offline",
                       "--overwrite"), 0, "logged offline; sync it with", lines=1)  # fmt: skip
    result = ws.evaluate("--num-samples", "10", "--overwrite")
    expect(result, 5, "never synced", "wandb sync")
    assert list((bundle / "wandb").glob("offline-run-*"))
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--llm-args", "batch_size=abc"], "invalid --llm-args batch_size='abc' for HashLLM: expected int"),
        (["--llm-args", "bias=[1, 2]"], "expected str"),
        (["--llm-args", "nosuch=1"], "does not accept --llm-args nosuch"),
    ],
)
def test_a_bad_model_argument_leaves_nothing_behind(ws, args, says):
    before = sorted(p.name for p in ws.out.iterdir())
    expect(ws.evaluate(*args, "--num-samples", "12"), 2, says)
    assert sorted(p.name for p in ws.out.iterdir()) == before
    ws.keeper_intact()


def test_a_bad_embedded_version_leaves_nothing_behind(ws):
    before = sorted(p.name for p in ws.out.iterdir())
    result = ws.run("--llm-name", "embedded", "--llm-args", "version=v9", "--task-name", "letters.yaml",
                    "--output-dir", ws.out)  # fmt: skip
    expect(result, 2, "unknown --llm-args version='v9'; use one of the embedded versions: v0, v1, v2, latest")
    assert sorted(p.name for p in ws.out.iterdir()) == before
    ws.keeper_intact()


def test_a_kill_during_the_evaluation_keeps_finished_samples_and_resumes(ws):
    proc = ws.start(*ws.KEEPER_ARGS, "--output-dir", ws.out, "--num-fewshot", "1", "--batch-size", "1",
                    env={"EF_TEST_SLEEP": "2"})  # fmt: skip
    signal_when(proc, lambda: has_rows(ws.out, "*1shot*"), signal.SIGKILL)
    time.sleep(0.1)
    expect(ws.evaluate("--num-fewshot", "1"), 0, lines=0)
    ws.keeper_intact()


def test_a_kill_during_the_checkpoint_download_leaves_no_partial_files(ws, s3, wandb_http, tmp_path):
    """SIGTERM while a registry checkpoint downloads: one line, no part files, nothing made; the
    rerun downloads and evaluates."""
    import subprocess
    import sys
    import uuid
    from pathlib import Path

    from tests.fakes.wandb_service import VALID_KEY
    from tests.faults.conftest import Result

    launcher = Path(__file__).with_name("registry_cli.py")
    repo = Path(__file__).parents[2]
    bucket = f"wandb-storage-{uuid.uuid4().hex[:12]}"
    store = ws.root / "store"
    env = ws.environment({
        "PYTHONPATH": str(repo), "WANDB_API_KEY": VALID_KEY, "WANDB_ARTIFACT_DIR": str(store),
        "WANDB_BASE_URL": wandb_http,
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"], "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
    })  # fmt: skip
    args = [sys.executable, str(launcher), bucket, "--checkpoint", "tiny:prod", "--llm-args", "dtype=float32",
            "--task-name", "letters.yaml", "--num-samples", "4", "--output-dir", str(ws.out)]  # fmt: skip

    def made() -> list[str]:
        return sorted(p.name for p in ws.out.iterdir() if not p.name.endswith(".lock"))

    before = made()
    proc = subprocess.Popen(args, cwd=ws.root, env={**env, "EF_SLOW_DOWNLOAD": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    result = signal_when(proc, lambda: any(store.rglob(".*part-*")), signal.SIGTERM)
    expect(result, 143, "stopped by SIGTERM", "rerun the same command")
    assert not list(store.rglob(".*part-*"))
    assert made() == before
    done = subprocess.run(args, cwd=ws.root, env=env, capture_output=True, text=True, timeout=300)
    expect(Result(done.returncode, done.stdout, done.stderr, 0.0), 0, lines=0)
    assert any(p.name.startswith("tiny-prod__letters") for p in ws.out.iterdir())
    ws.keeper_intact()


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_metadata_edited_after_the_evaluation_finished_is_not_trusted(ws):
    bundle = ws.bundle("--num-samples", "10")
    original = json.loads((bundle / "metadata.json").read_text())

    def forge(data):
        data["task"]["num_fewshot"] = 3
        data["model"]["name"] = "Llama-70B"

    _edit_json(bundle / "metadata.json", forge)
    dry = ws.run("upload", bundle, "--wandb-project", "evals", "--dry-run")
    assert dry.code == 0, dry.out
    assert "changed after it finished" in dry.out, dry.out
    assert "Llama-70B" not in dry.out, dry.out
    rerun = ws.evaluate("--num-samples", "10")
    expect(rerun, 0, "changed after it finished", "completing it")
    repaired = json.loads((bundle / "metadata.json").read_text())
    assert repaired["task"] == original["task"]
    assert repaired["model"]["name"] == original["model"]["name"]
    expect(ws.evaluate("--num-samples", "10"), 0, "reusing")
    ws.keeper_intact()


def test_reformatted_or_reordered_rows_are_still_the_same_finished_evaluation(ws):
    bundle = ws.bundle("--num-samples", "10")
    rows = [json.loads(line) for line in (bundle / "samples.jsonl").read_text().splitlines()]
    for row in rows:  # as jq or JavaScript write them: 1.0 as 1
        row["scores"] = {k: int(v) if float(v).is_integer() else v for k, v in row["scores"].items()}
    compact = [json.dumps(r, separators=(",", ":"), sort_keys=True) for r in reversed(rows)]
    (bundle / "samples.jsonl").write_text("\n".join(compact) + "\n")
    expect(ws.evaluate("--num-samples", "10"), 0, "reusing")
    ws.keeper_intact()


def test_a_removed_seal_is_not_a_way_around_it(ws):
    bundle = ws.bundle("--num-samples", "10")

    def downgrade(data):
        data["schema_version"] = 1
        del data["seal"]
        data["model"]["name"] = "GPT-9"

    _edit_json(bundle / "metadata.json", downgrade)
    dry = ws.run("upload", bundle, "--wandb-project", "evals", "--dry-run")
    assert dry.code == 0, dry.out
    assert "it has no seal" in dry.out, dry.out
    assert "GPT-9" not in dry.out, dry.out
    expect(ws.evaluate("--num-samples", "10"), 0, "it has no seal", "completing it")
    assert json.loads((bundle / "metadata.json").read_text())["model"]["name"] != "GPT-9"
    ws.keeper_intact()
