"""Export destinations by name: the built-in ones, and plugins registered by other packages.

A plugin package declares its sink class in its own metadata::

    [project.entry-points."eval_framework.sinks"]
    my-dashboard = "my_package.sink:DashboardSink"

The class follows ``eval_framework.sinks.base.Sink``: a ``name``, a pydantic ``Config`` model of
the keys it takes, ``preflight()`` and ``publish(bundle, force)``.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, cast

from pydantic import ValidationError

from eval_framework.bundle_schema import problem
from eval_framework.errors import ConfigError, brief
from eval_framework.sinks.base import Sink

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "eval_framework.sinks"

#: Built-in destinations, imported only when used.
BUILTIN = {
    "local": "eval_framework.sinks.local:LocalSink",
    "hf": "eval_framework.sinks.hf_hub:HfSink",
    "wandb": "eval_framework.sinks.wandb_export:WandbSink",
    "mlflow": "eval_framework.sinks.mlflow_export:MlflowSink",
    "gsheets": "eval_framework.sinks.gsheets:SheetsSink",
}


def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Every destination name --dest takes, built-in first."""
    return list(BUILTIN) + sorted(set(_plugins()) - set(BUILTIN))


def sink_class(name: str) -> type[Sink]:
    """The class behind a destination name; a ConfigError naming the valid ones otherwise."""
    plugins = _plugins()
    if name in BUILTIN and name in plugins:  # said once, where it matters: the name is used
        log.warning(
            "the plugin destination %r (%s) is shadowed by the built-in one; rename it", name, plugins[name]
        )
    target = BUILTIN.get(name) or plugins.get(name)
    if target is None:
        close = difflib.get_close_matches(name, available(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown export destination {name!r}{hint}; use one of: {', '.join(available())}")
    module_name, _, attr = target.partition(":")
    try:
        return cast(type[Sink], getattr(importlib.import_module(module_name), attr))
    except Exception as exc:  # a plugin's own import failing: said, not a traceback
        raise ConfigError(
            f"export destination {name!r} ({target}) cannot be loaded: {brief(exc, with_type=True)}; "
            "check that its package is installed"
        ) from exc


def make_sink(name: str, config: Mapping[str, Any] | None = None) -> Sink:
    """A destination built from its config; unknown keys are refused with the valid ones."""
    cls = sink_class(name)
    given = dict(config or {})
    known = list(cls.Config.model_fields)
    unknown = [key for key in given if key not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            f"{name} export: unknown config key {unknown[0]!r}{hint}; it takes {', '.join(known)}"
        )
    try:
        settings = cls.Config.model_validate(given)
    except ValidationError as exc:
        raise ConfigError(f"{name} export: invalid config: {problem(exc)}; fix that value") from exc
    return cls(settings)
