"""Older bundles read in the current schema (their files untouched); newer ones refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval_framework import EvalConfig, evaluate
from eval_framework.bundle_migrate import TooNew, upgraded
from eval_framework.bundle_scan import check_row
from eval_framework.bundle_schema import SCHEMA_VERSION, SampleRow
from eval_framework.bundle_seal import seal_of
from eval_framework.results import Bundle
from tests.conftest import USER_MODELS


def _config(out: Path) -> EvalConfig:
    return EvalConfig(
        llm_name="HashLLM", models=USER_MODELS, task_name="tiny-letters", num_fewshot=1, num_samples=8,
        output_dir=out,
    )  # fmt: skip


def _as_schema_3(bundle: Path) -> None:
    """Rewrite a finished bundle as schema 3 wrote it (rows without a version), sealed again."""
    rows = [json.loads(line) for line in (bundle / "samples.jsonl").read_text().splitlines()]
    for row in rows:
        del row["schema_version"]
    results = {**json.loads((bundle / "results.json").read_text()), "schema_version": 3}
    metadata = {**json.loads((bundle / "metadata.json").read_text()), "schema_version": 3}
    del metadata["task"]["fewshot_sampler"]  # fields schema 4 declares were optional extras before
    metadata["seal"] = seal_of(metadata, results, rows)
    (bundle / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (bundle / "results.json").write_text(json.dumps(results))
    (bundle / "metadata.json").write_text(json.dumps(metadata))


def _files(bundle: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in bundle.iterdir() if p.suffix in (".json", ".jsonl")}


def test_a_schema_3_bundle_is_reused_read_as_the_current_schema_and_left_as_written(tmp_path):
    first = evaluate(_config(tmp_path))
    assert first.metadata.schema_version == SCHEMA_VERSION == 4
    _as_schema_3(first.bundle_dir)
    before = _files(first.bundle_dir)

    again = evaluate(_config(tmp_path))

    assert again.reused
    assert again.bundle_dir == first.bundle_dir
    assert again.metadata.schema_version == again.results.schema_version == SCHEMA_VERSION
    assert again.metadata.task.fewshot_sampler is None
    assert again.metadata.complete
    assert again.results.metrics == first.results.metrics
    bundle = Bundle(first.bundle_dir)
    assert [row.schema_version for row in bundle.samples()] == [SCHEMA_VERSION] * 8
    assert all("schema_version" not in row for row in bundle.stored_rows())
    assert _files(first.bundle_dir) == before  # read, never rewritten: the seal covers what is stored


def test_a_schema_3_bundle_edited_after_it_finished_is_still_caught(tmp_path):
    first = evaluate(_config(tmp_path))
    _as_schema_3(first.bundle_dir)
    results = json.loads((first.bundle_dir / "results.json").read_text())
    results["model"] = "someone-else"
    (first.bundle_dir / "results.json").write_text(json.dumps(results))
    assert "seal" in (Bundle(first.bundle_dir).problems() or "")


def test_a_row_without_a_version_is_a_schema_3_row_and_a_newer_row_is_set_aside():
    row = {"index": 0, "id": "a", "prompt": "p", "fewshot_ids": [], "target": "x", "scores": {"em": 1.0},
           "generation": "x"}  # fmt: skip
    assert upgraded(row, "row")["schema_version"] == SCHEMA_VERSION
    assert "schema_version" not in row
    assert SampleRow.model_validate(upgraded(row, "row")).generation == "x"
    assert check_row(row) is None
    newer = check_row({**row, "schema_version": SCHEMA_VERSION + 1})
    assert newer is not None
    assert f"bundle schema {SCHEMA_VERSION + 1}" in newer
    assert "upgrade" in newer


@pytest.mark.parametrize("kind", ["metadata", "results"])
def test_files_from_every_older_schema_come_up_to_the_current_one(kind):
    for version in range(1, SCHEMA_VERSION):
        data = {"schema_version": version, "nested": {"kept": [1, 2]}}
        up = upgraded(data, kind)
        assert up == {"schema_version": SCHEMA_VERSION, "nested": {"kept": [1, 2]}}
        assert data["schema_version"] == version  # a copy: the caller's data is what was stored
    with pytest.raises(TooNew, match=f"bundle schema {SCHEMA_VERSION + 1}"):
        upgraded({"schema_version": SCHEMA_VERSION + 1}, kind)
    assert upgraded({"schema_version": "x"}, kind) == {"schema_version": "x"}  # validation names it


def test_the_bundle_reference_documents_every_field():
    from pydantic import BaseModel

    from eval_framework import bundle_schema

    doc = (Path(__file__).parents[1] / "docs" / "bundle.md").read_text(encoding="utf-8")
    models = [
        m
        for m in vars(bundle_schema).values()
        if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == bundle_schema.__name__
    ]
    missing = [f"{m.__name__}.{name}" for m in models for name in m.model_fields if f"`{name}`" not in doc]
    assert len(models) >= 10
    assert not missing
