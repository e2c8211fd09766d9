"""W&B Registry checkpoints: references, lookups, verified downloads, destinations, resolution."""
