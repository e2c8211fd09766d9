"""A registry checkpoint chosen once per evaluation, by the pipeline (config, then this, then the
evaluation): the result's identity and the weights evaluated are the same version even when an
alias moves meanwhile, and the reference is looked up (and a ``-local`` twin checked) once.

Any model class whose constructor takes ``checkpoint`` can evaluate one: the pipeline fetches the
files and passes the checkpoint directory as ``checkpoint=``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_framework.registry.reference import CheckpointRef
from eval_framework.registry.resolver import Choice, ResolvedCheckpoint, ResolveOptions, Resolver

#: --llm-args the pipeline takes for a registry checkpoint (``--checkpoint`` sets the first,
#: ``--artifact-dir`` the second); a model never sees them.
REGISTRY_ARGS = ("artifact_name", "artifact_dir", "checkpoint_subdir")


def split_registry_args(llm_args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the registry arguments, the model's own arguments)."""
    registry = {k: v for k, v in llm_args.items() if k in REGISTRY_ARGS and v not in (None, "")}
    return registry, {k: v for k, v in llm_args.items() if k not in REGISTRY_ARGS}


@dataclass(frozen=True)
class PinnedCheckpoint:
    """The version to evaluate, decided; its files are fetched only if the evaluation runs."""

    ref: CheckpointRef
    choice: Choice
    resolver: Resolver
    subdir: str | None

    @classmethod
    def choose(cls, registry_args: dict[str, Any]) -> PinnedCheckpoint:
        """One round of lookups for ``artifact_name`` (with its ``-local`` twin check)."""
        artifact_dir = registry_args.get("artifact_dir")
        subdir = registry_args.get("checkpoint_subdir")
        options = ResolveOptions(
            artifact_dir=Path(str(artifact_dir)) if artifact_dir else None,
            checkpoint_subdir=str(subdir) if subdir else None,
        )
        resolver = Resolver(options=options)
        ref = resolver.parse(str(registry_args["artifact_name"]))
        return cls(ref, resolver.choose(ref), resolver, options.checkpoint_subdir)

    @property
    def identity(self) -> dict[str, str]:
        """What the result's identity records: the exact version and its contents' digest."""
        ident = self.choice.identity
        return {"qualified_name": ident.qualified_name, "digest": ident.digest}

    @property
    def display_name(self) -> str:
        """Collection and alias as the user wrote them (``llama-sft-prod``)."""
        return f"{self.ref.name}-{self.ref.alias}"

    def fetch(
        self, stack: contextlib.ExitStack, progress: Callable[[int], None] | None = None
    ) -> ResolvedCheckpoint:
        """The chosen version's files; temporary ones live until ``stack`` closes."""
        return self.resolver.fetch(self.ref, self.choice, stack, progress)
