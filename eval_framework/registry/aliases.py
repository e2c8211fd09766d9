"""Moving a registry alias (``best-arc``) to another version, through the SDK's own alias API.

``Artifact.save()`` on an existing version sends ``AddAliases`` (the server takes the alias from
the version that held it: an alias names one version of a collection) and ``UpdateArtifact`` with
the version's metadata, where each move's evidence is appended under ``PROMOTIONS_KEY``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from eval_framework.errors import RegistryError
from eval_framework.redact import scrub
from eval_framework.registry.reference import CheckpointRef
from eval_framework.registry.wandb_client import WandbRegistry

#: The version metadata key holding the promotions that moved an alias to it (newest last).
PROMOTIONS_KEY = "eval_framework_promotions"
#: Promotions kept in one version's metadata (the ledger keeps them all).
KEPT = 50


def alias_holder(registry: WandbRegistry, ref: CheckpointRef, alias: str) -> str | None:
    """The version (``vN``) of ``ref``'s collection that holds ``alias`` now, or None."""
    for index, aliases in registry.versions(ref):
        if alias in aliases:
            return f"v{index}"
    return None


def move_alias(
    registry: WandbRegistry, ref: CheckpointRef, version: str, alias: str, record: dict[str, Any]
) -> None:
    """Give ``alias`` to ``version`` of ``ref``'s collection and append ``record`` (the evidence)
    to that version's metadata."""
    target = replace(ref, alias=version)
    artifact = registry.artifact(target)
    try:
        if alias not in artifact.aliases:
            artifact.aliases = [*artifact.aliases, alias]
        metadata = dict(artifact.metadata or {})
        history = [h for h in metadata.get(PROMOTIONS_KEY) or [] if isinstance(h, dict)]
        metadata[PROMOTIONS_KEY] = [*history, record][-KEPT:]
        artifact.metadata = metadata
        artifact.save()
    except RegistryError:
        raise
    except Exception as exc:  # the SDK's CommError, wandb-core's API errors, a refused write
        lines = scrub(str(exc)).strip().splitlines()
        why = lines[0][:200] if lines else type(exc).__name__
        raise RegistryError(
            f"moving alias {alias!r} to {target.path} failed ({why}); "
            "check that WANDB_API_KEY may edit the registry's aliases and rerun (nothing was recorded "
            "as moved)"
        ) from exc
