"""Finding bundles, reading them as versions x tasks, and what is refused or skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval_framework.bundle_io import BundleDamaged
from eval_framework.compare.collect import collect, natural_key
from eval_framework.errors import ConfigError, OutputError
from tests.compare.bundles import restamp

REGISTRY = "acme/wandb-registry-model"


def _registry_versions(evaluated, root: Path, collection: str = "llama-sft", versions=(10, 2, 9)) -> Path:
    """Versions of a registry collection, made from the real bundles (v0, v1, v2 in turn)."""
    for number, source in zip(versions, ("v0", "v1", "v2"), strict=False):
        restamp(
            evaluated[source],
            root / f"{collection}-v{number}",
            qualified_name=f"{REGISTRY}/{collection}:v{number}",
        )
    return root


def test_local_checkpoints_in_natural_order(copy_bundles):
    out = copy_bundles("v2", "v0", "v1")
    collected = collect([out])
    assert [e.version.label for e in sorted(collected.evaluations, key=lambda e: e.version.sort_key)] == [
        "tiny-letters-v0", "tiny-letters-v1", "tiny-letters-v2",
    ]  # fmt: skip
    (first, *_) = collected.evaluations
    assert first.task == "tiny-letters"
    assert first.num_samples == 200
    assert set(first.scores) == {"acc", "acc_norm"}
    assert len(first.scores["acc"]) == 200
    assert first.metrics["acc"].per_sample
    assert first.metrics["acc"].binary
    assert sorted(["step-1000", "step-900", "step-90"], key=natural_key) == [
        "step-90",
        "step-900",
        "step-1000",
    ]


def test_registry_versions_by_number_and_a_collection_reference(evaluated, tmp_path):
    out = _registry_versions(evaluated, tmp_path / "outputs")
    restamp(evaluated["v1"], out / "other-v1", qualified_name=f"{REGISTRY}/other-model:v1")
    by_ref = collect(["llama-sft"], output_dir=out)
    ordered = sorted(by_ref.evaluations, key=lambda e: e.version.sort_key)
    assert [e.version.label for e in ordered] == ["v2", "v9", "v10"]  # numbers, not text
    assert {e.version.qualified_name for e in ordered} == {f"{REGISTRY}/llama-sft:v{n}" for n in (2, 9, 10)}
    assert by_ref.warnings == []
    full = collect(["acme/wandb-registry-model/llama-sft"], output_dir=out)
    assert len(full.evaluations) == 3
    assert (
        collect(["wandb-registry-model/llama-sft"], output_dir=out).evaluations[0].version.checkpoint
        == "llama-sft"
    )
    # two collections: labels say which
    both = collect([out])
    assert {e.version.label for e in both.evaluations} == {
        "llama-sft:v2", "llama-sft:v9", "llama-sft:v10", "other-model:v1",
    }  # fmt: skip
    (out / "other-v1" / "metadata.json").write_text("{torn")  # whose it is can no longer be told
    again = collect(["llama-sft"], output_dir=out)
    assert len(again.evaluations) == 3
    (warning,) = again.warnings
    assert warning.startswith(f"could not read {out / 'other-v1'} to tell which checkpoint it evaluated")


def test_a_reference_that_selects_nothing_or_names_a_version(evaluated, tmp_path):
    out = _registry_versions(evaluated, tmp_path / "outputs")
    with pytest.raises(ConfigError, match="no finished evaluations of wandb-registry-model/other under"):
        collect(["other"], output_dir=out)
    with pytest.raises(
        ConfigError, match="no finished evaluations of other-org/wandb-registry-model/llama-sft"
    ):
        collect(["other-org/wandb-registry-model/llama-sft"], output_dir=out)  # another org's collection
    with pytest.raises(ConfigError, match="without ':<alias>'"):
        collect(["llama-sft:v3"], output_dir=out)
    with pytest.raises(ConfigError, match="neither an existing path nor a registry collection"):
        collect(["no/such/dir/here"], output_dir=out)
    with pytest.raises(ConfigError, match="does not exist; pass bundle directories"):
        collect(["./llama-sft"], output_dir=out)  # path-like: never a collection
    with pytest.raises(ConfigError, match="no output directory"):
        collect(["llama-sft"], output_dir=tmp_path / "missing")


def test_a_directory_without_bundles(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no evaluation bundles"):
        collect([tmp_path / "empty"])


def test_a_running_bundle_is_skipped_and_said(copy_bundles):
    out = copy_bundles("v0", "v1")
    running = next(out.glob("tiny-letters-v1*"))
    meta = json.loads((running / "metadata.json").read_text())
    meta["status"] = "running"
    (running / "metadata.json").write_text(json.dumps(meta))
    collected = collect([out])
    assert [e.version.label for e in collected.evaluations] == ["tiny-letters-v0"]
    assert collected.skipped == [
        (running.resolve(), "still running (or interrupted): its metadata.json says status running")
    ]
    with pytest.raises(ConfigError, match="no finished evaluations to compare among 1 bundle"):
        collect([running])


@pytest.mark.parametrize(
    ("file", "text", "said"),
    [
        ("metadata.json", "{not json", "metadata.json is damaged (not valid JSON)"),
        ("metadata.json", "[1, 2]", "metadata.json is damaged (not a JSON object)"),
        ("results.json", '{"schema_version": 4, "metrics": []}', "results.json is damaged"),
    ],
)
def test_a_damaged_bundle_stops_the_comparison(copy_bundles, file, text, said):
    out = copy_bundles("v0", "v1")
    damaged = next(out.glob("tiny-letters-v1*"))
    (damaged / file).write_text(text)
    with pytest.raises(OutputError, match="cannot compare") as info:
        collect([out])
    assert said in str(info.value)
    assert "move the bundle away" in str(info.value)
    assert (damaged / file).read_text() == text  # nothing rewritten
    if file == "metadata.json":
        assert isinstance(info.value, BundleDamaged)


def test_an_edited_sample_row_stops_the_comparison(copy_bundles):
    out = copy_bundles("v0")
    bundle = next(out.iterdir())
    lines = (bundle / "samples.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["id"] = "edited"
    (bundle / "samples.jsonl").write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    with pytest.raises(OutputError, match=r"seal in metadata\.json does not match"):
        collect([bundle])


def test_several_bundles_of_one_version_and_task(copy_bundles):
    out = copy_bundles("v0", "v0-40", "v1")
    collected = collect([out])
    kept = {e.version.label: e for e in collected.evaluations}
    assert kept["tiny-letters-v0"].num_samples == 200  # the one with most samples
    (warning,) = [w for w in collected.warnings if "has 2 bundles" in w]
    assert "__40__" in warning


def test_shot_counts_make_separate_tasks(copy_bundles, evaluated, tmp_path):
    from tests.compare.bundles import evaluate_embedded

    out = copy_bundles("v0", "v1")
    evaluate_embedded("v1", out, 20, num_fewshot=0)
    tasks = {e.task for e in collect([out]).evaluations}
    assert tasks == {"tiny-letters (3-shot)", "tiny-letters (0-shot)"}


def test_local_directories_that_share_a_name_go_by_their_path(evaluated, tmp_path):
    out = tmp_path / "outputs"
    for source, path in (("v0", "runs/b/step-100"), ("v1", "runs/a/step-100"), ("v2", "runs/a/step-90")):
        restamp(evaluated[source], out / path.replace("/", "_"), model_name=path.rsplit("/", 1)[1],
                checkpoint_path=path)  # fmt: skip
    ordered = sorted(collect([out]).evaluations, key=lambda e: e.version.sort_key)
    # step-90 is alone in its name; the two step-100 directories are told apart by their paths
    assert [e.version.label for e in ordered] == ["step-90", "runs/a/step-100", "runs/b/step-100"]
