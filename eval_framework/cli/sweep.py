"""``sweep`` and ``watch``: evaluate every selected (or every new) version of a checkpoint collection."""
