"""The installed package version (from package metadata, so it matches what pip installed)."""

from importlib import metadata

try:
    __version__ = metadata.version("eval_framework")
except metadata.PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"
