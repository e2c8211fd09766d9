"""W&B Registry checkpoints: references, lookups, verified downloads, destinations, resolution."""

from eval_framework.registry.checkpoint_root import find_checkpoint_root, safe_join
from eval_framework.registry.reference import DEFAULT_REGISTRY, CheckpointRef, parse_reference

__all__ = ["DEFAULT_REGISTRY", "CheckpointRef", "find_checkpoint_root", "parse_reference", "safe_join"]
