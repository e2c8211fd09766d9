"""The pure mapping from a bundle to its W&B run: names, keys, table, staged files."""

from __future__ import annotations

import gzip
import json

from eval_framework.bundle_schema import TaskIdentity
from eval_framework.results import Bundle
from eval_framework.sinks import wandb_spec
from eval_framework.sinks.wandb_names import artifact_name, metric_key, shorten
from eval_framework.sinks.wandb_spec import (
    WandbOptions,
    build_spec,
    dataset_revision,
    stage_artifact_files,
    table_rows,
)


def test_shortening_is_deterministic_and_keeps_names_apart():
    a, b = "x" * 200 + "-alpha", "x" * 200 + "-beta"
    assert shorten(a, 128) == shorten(a, 128)
    assert len(shorten(a, 128)) == 128
    assert shorten(a, 128) != shorten(b, 128)
    assert shorten("short", 128) == "short"
    name = artifact_name("eval-" + "ü/" * 100)
    assert len(name) <= 128
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    assert metric_key("acc,none") == "acc"
    assert metric_key("exact_match,strict match") == "exact_match_strict_match"


def test_spec_of_a_bundle(bundle):
    spec = build_spec(Bundle(bundle), WandbOptions(project="p", tags=("nightly",)))
    results = json.loads((bundle / "results.json").read_text())
    overall = results["metrics"]["overall"]["acc"]
    assert spec.summary["tiny-letters/acc"] == overall["value"]
    assert spec.summary["tiny-letters/acc/stderr"] == overall["stderr"]
    assert spec.summary["tiny-letters/acc/n"] == 24
    assert spec.summary["tiny-letters/copy/acc/n"] + spec.summary["tiny-letters/reverse/acc/n"] == 24
    assert spec.group == "tiny-letters-v0"
    assert spec.job_type == "tiny-letters"
    assert spec.name == "tiny-letters-v0 tiny-letters 2-shot n=24"
    assert spec.tags == ("nightly", "tiny-letters", "2-shot")
    assert spec.run_id == build_spec(Bundle(bundle), WandbOptions(project="other")).run_id  # identity only
    expected = {
        "checkpoint_name",
        "checkpoint_version",
        "task_name",
        "language",
        "num_fewshot",
        "num_samples",
    }
    expected |= {"eval_framework_version", "dataset", "hf_upload_url", "evaluation_hash"}
    assert expected <= set(spec.config)
    data = json.loads((bundle / "metadata.json").read_text())["task"]["identity"]["data_sha256"]
    assert set(data) == {"eval", "fewshot"}  # a file task: its revision is the digest of its data
    revision = spec.config["dataset_revision"]
    assert revision.startswith("sha256:")
    assert len(revision) == 19
    assert dataset_revision(TaskIdentity(data_sha256={**data, "eval": "0" * 64})) != revision
    assert dataset_revision(TaskIdentity(revision="abc123", data_sha256=data)) == "abc123"
    assert spec.artifact_alias.startswith("content-")
    assert len(spec.content_hash) == 64


def test_long_names_are_shortened_before_any_call(bundle):
    spec = build_spec(Bundle(bundle), WandbOptions(project="p", group="g" * 300, tags=("t" * 80,)))
    assert len(spec.group) == 128
    assert spec.group.startswith("g" * 100)
    assert all(len(t) <= 64 for t in spec.tags)


def test_table_keeps_wrong_answers_first_and_numbers_numeric(bundle):
    columns, rows = table_rows(Bundle(bundle), limit=10)
    correct = [r[columns.index("correct")] for r in rows]
    samples = Bundle(bundle).stored_rows()
    wrong = sum(1 for s in samples if s["scores"]["acc"] < 1)
    assert len(rows) == 10
    assert 0 < wrong < 24
    assert correct == sorted(correct)  # False (wrong) before True
    assert correct.count(False) == min(wrong, 10)
    for name in ("acc", "logprob_target", "logprob_prediction"):
        assert all(isinstance(r[columns.index(name)], float) for r in rows)
    assert all(isinstance(r[0], int) for r in rows)


def test_staged_files_drop_links_and_compress_large_logs(bundle, monkeypatch):
    monkeypatch.setattr(wandb_spec, "COMPRESS_ABOVE", 100)
    metadata = json.loads((bundle / "metadata.json").read_text())
    metadata["links"] = {"wandb_run_url": "https://example.invalid/run"}
    (bundle / "metadata.json").write_text(json.dumps(metadata))
    files = stage_artifact_files(Bundle(bundle))
    assert sorted(files) == ["eval.log.gz", "metadata.json", "results.json", "samples.jsonl.gz"]
    assert "links" not in json.loads(files["metadata.json"].read_text())
    assert gzip.decompress(files["samples.jsonl.gz"].read_bytes()) == (bundle / "samples.jsonl").read_bytes()
    again = stage_artifact_files(Bundle(bundle))
    assert again["samples.jsonl.gz"].read_bytes() == files["samples.jsonl.gz"].read_bytes()  # deterministic
