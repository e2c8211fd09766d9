"""Which versions a sweep evaluates: --versions, --every, --shard, and local checkpoint folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval_framework.errors import ConfigError
from eval_framework.sweep.versions import (
    Selection,
    Shard,
    Version,
    choose,
    every,
    is_local_source,
    list_versions,
    natural_key,
)


def _registry(*numbers: int) -> list[Version]:
    return [Version(f"v{n}", f"wandb-registry-model/tiny:v{n}", local=False, number=n) for n in numbers]


def _labels(versions: list[Version]) -> list[str]:
    return [v.label for v in versions]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ["v0", "v1", "v2", "v3", "v5", "v6"]),
        ("all", ["v0", "v1", "v2", "v3", "v5", "v6"]),
        ("last:2", ["v5", "v6"]),
        ("last:10", ["v0", "v1", "v2", "v3", "v5", "v6"]),
        ("v2..v5", ["v2", "v3", "v5"]),
        ("v4..v4", []),  # v4 was deleted: refused below
        ("v3..v9", ["v3", "v5", "v6"]),  # a bound need not exist
        ("since:v5", ["v5", "v6"]),
        ("since:v4", ["v5", "v6"]),
    ],
)
def test_selection_over_registry_versions(text, expected):
    versions = _registry(0, 1, 2, 3, 5, 6)
    selection = Selection.parse(text)
    if not expected:
        with pytest.raises(ConfigError, match=r"selects no version; there are 6 versions \(v0 \.\. v6\)"):
            selection.apply(versions)
        return
    assert _labels(selection.apply(versions)) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("last:0", "last:N needs a whole number"),
        ("last:x", "last:N needs a whole number"),
        ("since:", "since: needs a version"),
        ("v7..v3", "ends before it starts; write v3..v7"),
        ("v3..", "unknown form"),
        ("latest", "unknown form"),
        ("v3-v7", "unknown form"),
    ],
)
def test_bad_selections_are_refused_with_the_accepted_forms(text, why):
    with pytest.raises(ConfigError) as info:
        Selection.parse(text)
    assert why in str(info.value)
    assert "accepted forms: all, last:N, vA..vB (inclusive), since:vN" in str(info.value)


def test_a_range_beyond_the_collection_says_what_there_is():
    with pytest.raises(ConfigError, match=r"--versions since:v9 selects no version; there are 3 versions"):
        Selection.parse("since:v9").apply(_registry(0, 1, 2))


def test_every_counts_from_the_oldest_and_keeps_the_newest():
    versions = _registry(*range(8))
    assert _labels(every(versions, 3)) == ["v0", "v3", "v6", "v7"]
    assert _labels(every(versions, 7)) == ["v0", "v7"]  # the newest is already there: once
    assert _labels(every(versions, 100)) == ["v0", "v7"]
    assert every(versions, 1) == versions
    with pytest.raises(ConfigError, match="--every 0"):
        every(versions, 0)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10])
def test_shards_cover_every_version_exactly_once(count):
    versions = _registry(*range(7))
    shards = [Shard.parse(f"{i}/{count}") for i in range(count)]
    taken = [v for shard in shards if shard is not None for v in shard.take(versions)]
    assert sorted(_labels(taken), key=natural_key) == _labels(versions)
    sizes = [len(s.take(versions)) for s in shards if s is not None]
    assert max(sizes) - min(sizes) <= 1  # balanced


@pytest.mark.parametrize(
    ("text", "why"),
    [("3/2", r"i must be from 0 to n-1 \(the shards of 2 are 0/2 .. 1/2\)"),
     ("10/3", r"\(the shards of 3 are 0/3 .. 2/3\)"), ("0/0", "n must be 1 or more"),
     ("1", "write i/n"), ("a/b", "write i/n"), ("-1/2", "write i/n")],
)  # fmt: skip
def test_bad_shards_are_refused(text, why):
    with pytest.raises(ConfigError, match=why):
        Shard.parse(text)


def test_selection_then_every_then_shard():
    versions = _registry(*range(10))
    chosen = choose(versions, Selection.parse("v2..v8"), step=2, shard=Shard(1, 2))
    # v2..v8 -> every 2nd: v2 v4 v6 v8 -> shard 1 of 2: v4 v8
    assert _labels(chosen) == ["v4", "v8"]


def _checkpoints(root: Path, *names: str) -> None:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text("{}")


def test_local_directories_are_ordered_naturally(tmp_path):
    _checkpoints(tmp_path / "runs" / "a", "step-10", "step-2", "step-1")
    (tmp_path / "runs" / "a" / "step-3.txt").write_text("a file, not a checkpoint")
    found = list_versions("runs/a/step-*")
    assert _labels(found) == ["runs/a/step-1", "runs/a/step-2", "runs/a/step-10"]
    assert all(v.local and v.llm_args() == {"checkpoint": v.label} for v in found)
    # a directory of checkpoints lists its subdirectories; a checkpoint lists itself
    assert _labels(list_versions("runs/a")) == _labels(found)
    assert _labels(list_versions("runs/a/step-2")) == ["runs/a/step-2"]


def test_local_bounds_are_directory_names_or_paths(tmp_path):
    _checkpoints(tmp_path / "runs" / "a", "step-1", "step-2", "step-10")
    _checkpoints(tmp_path / "runs" / "b", "step-1")
    found = list_versions("runs/*/step-*")
    assert _labels(Selection.parse("step-2..step-10").apply(found)) == ["runs/a/step-2", "runs/a/step-10"]
    assert _labels(Selection.parse("since:runs/b/step-1").apply(found)) == ["runs/b/step-1"]
    with pytest.raises(ConfigError, match="'step-1' matches 2 directories"):
        Selection.parse("since:step-1").apply(found)
    with pytest.raises(ConfigError, match="'step-7' matches no version"):
        Selection.parse("step-7..step-10").apply(found)


def test_a_glob_matching_nothing_is_refused(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(ConfigError, match="no checkpoint directories match 'runs/\\*/step-\\*'"):
        list_versions("runs/*/step-*")


def test_registry_references_and_paths_are_told_apart(tmp_path):
    assert not is_local_source("llama-sft")
    assert not is_local_source("wandb-registry-model/llama-sft")
    assert not is_local_source("acme/wandb-registry-model/llama-sft")
    assert is_local_source("runs/*/step-*")
    assert is_local_source("./llama-sft")
    (tmp_path / "llama-sft").mkdir()
    assert is_local_source("llama-sft")  # an existing directory wins
