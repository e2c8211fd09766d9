"""W&B Registry checkpoints: references, checkpoint roots, safe paths.

Resolution and downloads (the rest of the registry issue) build on these.
"""

from eval_framework.registry.checkpoint_root import find_checkpoint_root, safe_join
from eval_framework.registry.reference import DEFAULT_REGISTRY, CheckpointRef, parse_reference

__all__ = ["DEFAULT_REGISTRY", "CheckpointRef", "find_checkpoint_root", "parse_reference", "safe_join"]
