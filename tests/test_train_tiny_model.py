"""The script behind the shipped checkpoints is deterministic and reproduces the shipped data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from eval_framework.embedded import DATA, checkpoint_dir

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_tiny_model.py"


def _train(out: Path) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--steps", "4", "--snapshots", "0", "2"],
        check=True,
        capture_output=True,
    )


def test_same_arguments_same_bytes(tmp_path):
    _train(tmp_path / "a")
    _train(tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert {f.parts[0] for f in files} == {"data", "checkpoints"}
    assert any(f.name == "model.safetensors" for f in files)
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    # The task data does not depend on training length: it is the shipped data.
    for name in ("tiny_letters_test.jsonl", "tiny_letters_fewshot.jsonl"):
        assert (tmp_path / "a" / "data" / name).read_bytes() == (DATA / name).read_bytes()
    # Step 0 is the seeded initialisation: the shipped v0 (config.json also records the
    # transformers release that wrote it, which is not the model).
    built = tmp_path / "a" / "checkpoints" / "tiny-letters" / "v0"
    for name in ("model.safetensors", "tokenizer.json"):
        assert (built / name).read_bytes() == (checkpoint_dir("v0") / name).read_bytes(), name
    configs = [json.loads((d / "config.json").read_text()) for d in (built, checkpoint_dir("v0"))]
    for config in configs:
        config.pop("transformers_version")
    assert configs[0] == configs[1]
    versions = sorted(p.name for p in (tmp_path / "a" / "checkpoints" / "tiny-letters").iterdir())
    assert versions == ["v0", "v1", "v2"]
