"""Find the Hugging Face checkpoint root inside a downloaded artifact, and keep paths inside it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

from eval_framework.errors import ConfigError, EvalFrameworkError, ModelError, RegistryError

_WEIGHTS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model.bin.index.json")


def is_checkpoint_dir(path: Path) -> bool:
    """config.json plus at least one weights file."""
    return (path / "config.json").is_file() and any(any(path.glob(p)) for p in _WEIGHTS)


def find_checkpoint_root(root: Path, subdir: str | None = None) -> Path:
    """The directory to load: ``root/subdir`` when given, else the single candidate below root."""
    if subdir:
        chosen = subdir_join(root, subdir)
        if not is_checkpoint_dir(chosen):
            raise ModelError(
                f"checkpoint_subdir {subdir!r} in {root} has no config.json with weights; "
                f"candidates: {', '.join(_candidates(root)) or 'none'}"
            )
        return chosen
    if is_checkpoint_dir(root):
        return root
    candidates = _candidates(root)
    if len(candidates) == 1:
        return root / candidates[0]
    if not candidates:
        listing = ", ".join(sorted(p.name for p in root.iterdir())[:20]) if root.is_dir() else "nothing"
        raise ModelError(
            f"no Hugging Face checkpoint (config.json plus weights) found in {root}; it holds: {listing}"
        )
    raise ConfigError(
        f"several checkpoints found in {root}: {', '.join(candidates)}; "
        "choose one with --llm-args checkpoint_subdir=<one of them>"
    )


def _candidates(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    found = {p.parent for p in root.rglob("config.json") if is_checkpoint_dir(p.parent)}
    return sorted(p.relative_to(root).as_posix() for p in found)


def _join(root: Path, relative: str, refuse: Callable[[str], EvalFrameworkError]) -> Path:
    """``root/relative``; ``refuse(why)`` for an absolute path or one that escapes ``root``."""
    rel = PurePosixPath(relative.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or relative.startswith("~"):
        raise refuse("is absolute or escapes it")
    target = (root / Path(*rel.parts)).resolve()
    base = root.resolve()
    if target != base and base not in target.parents:
        raise refuse("resolves outside it")
    return target


def safe_join(root: Path, relative: str) -> Path:
    """Where a manifest's file goes under ``root``; a path that escapes it makes the artifact
    unusable (a registry error, not a model one)."""
    return _join(root, relative, lambda why: RegistryError(
        f"the artifact's manifest lists {relative!r}, which {why} ({root}); it cannot be downloaded "
        "safely: re-register the checkpoint with relative paths"
    ))  # fmt: skip


def subdir_join(root: Path, subdir: str) -> Path:
    """``checkpoint_subdir`` under the artifact's folder."""
    return _join(root, subdir, lambda why: ModelError(
        f"refusing path {subdir!r}: it {why} ({root}); check checkpoint_subdir"
    ))  # fmt: skip
