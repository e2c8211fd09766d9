from __future__ import annotations

from pathlib import Path

import pytest

from eval_framework.errors import ConfigError, ModelError, RegistryError
from eval_framework.registry.checkpoint_root import find_checkpoint_root, safe_join, subdir_join


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
def test_paths_that_escape_are_refused(tmp_path, bad):
    """A manifest path is the artifact's fault (a registry error); checkpoint_subdir the user's."""
    with pytest.raises(RegistryError, match=r"the artifact's manifest lists .*re-register"):
        safe_join(tmp_path, bad)
    with pytest.raises(ModelError, match=r"refusing path .*check checkpoint_subdir"):
        subdir_join(tmp_path, bad)


def test_symlink_escapes_are_refused(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(RegistryError, match="resolves outside"):
        safe_join(tmp_path / "root", "link/x")
    with pytest.raises(ModelError, match="resolves outside"):
        subdir_join(tmp_path / "root", "link/x")
    assert safe_join(tmp_path / "root", "a/b.txt") == (tmp_path / "root" / "a" / "b.txt").resolve()
