"""Checkpoint references: parsed and validated before any network call."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from eval_framework.errors import ConfigError

DEFAULT_REGISTRY = "wandb-registry-model"
REGISTRY_PREFIX = "wandb-registry-"
LOCAL_SUFFIX = "-local"

_NAME = re.compile(r"^[A-Za-z0-9_\-.]+$")  # W&B artifact and project names
_ALIAS = re.compile(r"^[A-Za-z0-9_\-.]+$")
_MAX_NAME = 128

ACCEPTED_FORMS = (
    "wandb-registry-<registry>/<collection>[:<alias|vN>], "
    "<org>/wandb-registry-<registry>/<collection>[:<alias|vN>], "
    "<entity>/<project>/<artifact>[:<alias|vN>], "
    "or <collection>[:<alias|vN>] (default registry)"
)


@dataclass(frozen=True)
class CheckpointRef:
    """A registered checkpoint version. ``entity`` is the org for registry references (None:
    taken from WANDB_ORGANIZATION or the API key's default)."""

    entity: str | None
    project: str
    name: str
    alias: str = "latest"

    @property
    def is_registry(self) -> bool:
        return self.project.startswith(REGISTRY_PREFIX)

    @property
    def registry(self) -> str | None:
        return self.project[len(REGISTRY_PREFIX) :] if self.is_registry else None

    @property
    def path(self) -> str:
        """The form the wandb SDK accepts (always with an explicit alias)."""
        prefix = f"{self.entity}/" if self.entity else ""
        return f"{prefix}{self.project}/{self.name}:{self.alias}"

    def local_twin(self) -> CheckpointRef:
        """The ``<name>-local`` artifact a trainer writes before its upload finishes."""
        return replace(self, name=self.name + LOCAL_SUFFIX)

    def __str__(self) -> str:
        return self.path


def _check(part: str, what: str, ref: str) -> None:
    if not part or not _NAME.match(part) or len(part) > _MAX_NAME:
        raise ConfigError(
            f"invalid checkpoint reference {ref!r}: bad {what} {part!r} (letters, digits, '-', '_', '.'; "
            f"at most {_MAX_NAME}); accepted forms: {ACCEPTED_FORMS}"
        )


def parse_reference(ref: str, default_registry: str = DEFAULT_REGISTRY) -> CheckpointRef:
    """Parse one of the accepted forms; no alias means ``latest``."""
    text = ref.strip()
    if not text:
        raise ConfigError(f"empty checkpoint reference; accepted forms: {ACCEPTED_FORMS}")
    body, sep, alias = text.partition(":")
    if sep and (not alias or not _ALIAS.match(alias)):
        raise ConfigError(
            f"invalid checkpoint reference {ref!r}: bad alias {alias!r}; accepted forms: {ACCEPTED_FORMS}"
        )
    alias = alias or "latest"
    parts = body.split("/")
    if len(parts) == 1:
        entity, project, name = None, default_registry, parts[0]
    elif len(parts) == 2 and parts[0].startswith(REGISTRY_PREFIX):
        entity, project, name = None, parts[0], parts[1]
    elif len(parts) == 3:
        entity, project, name = parts
    else:
        raise ConfigError(f"invalid checkpoint reference {ref!r}; accepted forms: {ACCEPTED_FORMS}")
    if project.startswith(REGISTRY_PREFIX) and project == REGISTRY_PREFIX:
        raise ConfigError(
            f"invalid checkpoint reference {ref!r}: registry name missing after "
            f"'{REGISTRY_PREFIX}'; accepted forms: {ACCEPTED_FORMS}"
        )
    if entity is not None:
        _check(entity, "entity or org", ref)
    _check(project, "project or registry", ref)
    _check(name, "collection or artifact name", ref)
    return CheckpointRef(entity, project, name, alias)
