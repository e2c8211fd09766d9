"""``compare``: versions x tasks from finished bundles, with paired significance against a baseline."""
