from __future__ import annotations

from pathlib import Path

import pytest

from eval_framework.errors import ConfigError, ModelError
from eval_framework.registry import find_checkpoint_root, safe_join


def _ckpt(path: Path, weights: str = "model.safetensors") -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / weights).write_bytes(b"w")
    return path


def test_root_itself(tmp_path):
    _ckpt(tmp_path / "a")
    assert find_checkpoint_root(tmp_path / "a") == tmp_path / "a"


def test_single_nested_candidate(tmp_path):
    _ckpt(tmp_path / "art" / "hf" / "final", "pytorch_model-00001-of-00002.bin")
    (tmp_path / "art" / "optimizer.pt").write_bytes(b"o")
    assert find_checkpoint_root(tmp_path / "art") == tmp_path / "art" / "hf" / "final"


def test_several_candidates_listed_and_chosen(tmp_path):
    _ckpt(tmp_path / "art" / "step-100")
    _ckpt(tmp_path / "art" / "step-200")
    with pytest.raises(ConfigError, match=r"step-100, step-200.*checkpoint_subdir"):
        find_checkpoint_root(tmp_path / "art")
    assert find_checkpoint_root(tmp_path / "art", "step-200") == (tmp_path / "art" / "step-200").resolve()
    with pytest.raises(ModelError, match="candidates: step-100, step-200"):
        find_checkpoint_root(tmp_path / "art", "step-300")


def test_config_without_weights_is_not_a_checkpoint(tmp_path):
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"no Hugging Face checkpoint .* it holds: config\.json"):
        find_checkpoint_root(tmp_path / "art")


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x", "", "~/x"])
def test_safe_join_refuses_escapes(tmp_path, bad):
    with pytest.raises(ModelError, match="refusing path"):
        safe_join(tmp_path, bad)


def test_safe_join_refuses_symlink_escape(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(ModelError, match="outside"):
        safe_join(tmp_path / "root", "link/x")
    assert safe_join(tmp_path / "root", "a/b.txt") == (tmp_path / "root" / "a" / "b.txt").resolve()
