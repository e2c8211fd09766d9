"""The shipped tiny checkpoints: a real transformers model small enough to live in the package."""

from __future__ import annotations

from typing import Any

from eval_framework.embedded import checkpoint_dir, checkpoint_versions
from eval_framework.errors import ConfigError
from eval_framework.models.huggingface import HuggingFaceLLM

#: HuggingFaceLLM arguments that choose, fetch or load another checkpoint: no-ops (or worse) here.
NOT_FOR_EMBEDDED = frozenset({"checkpoint", "revision", "trust_remote_code"})


class EmbeddedTinyLLM(HuggingFaceLLM):
    """``--llm-name embedded --llm-args version=v2``: one of the shipped tiny-letters checkpoints."""

    def __init__(self, version: str = "latest", **kwargs: Any) -> None:
        self.validate_args({"version": version})
        versions = checkpoint_versions()
        chosen = versions[-1] if version == "latest" else version
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("name", f"tiny-letters-{chosen}")
        super().__init__(str(checkpoint_dir(chosen)), **kwargs)
        self.version = chosen

    @classmethod
    def validate_args(cls, llm_args: dict[str, Any]) -> None:
        from eval_framework.models.loading import check_signature

        # The other arguments go to HuggingFaceLLM through **kwargs: check them against it, less
        # those that choose or load another checkpoint (the shipped ones are fixed and plain).
        fixed = sorted(set(llm_args) & NOT_FOR_EMBEDDED)
        if fixed:
            raise ConfigError(
                f"--llm-name embedded evaluates the shipped checkpoints and takes no --llm-args "
                f"{', '.join(fixed)}; drop it, or use --llm-name hf --llm-args checkpoint=<dir> for your own"
            )
        # The class's own named parameters are its own (a user's subclass may add some, checked
        # against its signature already); the rest reach HuggingFaceLLM.
        own = _named_parameters(cls.__init__) | {"version"}
        rest = {k: v for k, v in llm_args.items() if k not in own}
        rest = check_signature(
            HuggingFaceLLM, rest, owner=cls.__name__, hidden=NOT_FOR_EMBEDDED, own=sorted(own)
        )
        HuggingFaceLLM.validate_args({"checkpoint": "embedded", **rest})
        version = str(llm_args.get("version", "latest"))
        versions = checkpoint_versions()
        if version != "latest" and version not in versions:
            raise ConfigError(
                f"unknown --llm-args version={version!r}; use one of the embedded versions: "
                f"{', '.join(versions)}, latest"
            )

    @classmethod
    def _version_dir(cls, llm_args: dict[str, Any]) -> dict[str, Any]:
        versions = checkpoint_versions()
        version = str(llm_args.get("version", "latest"))
        chosen = versions[-1] if version == "latest" and versions else version
        return {**llm_args, "checkpoint": str(checkpoint_dir(chosen)), "version": chosen}

    @classmethod
    def result_identity(cls, llm_args: dict[str, Any]) -> dict[str, Any]:
        return super().result_identity(cls._version_dir(llm_args))

    @classmethod
    def display_name_for(cls, llm_args: dict[str, Any]) -> str:
        return str(llm_args.get("name") or f"tiny-letters-{cls._version_dir(llm_args)['version']}")


def _named_parameters(function: Any) -> set[str]:
    """The parameters a function names (not *args, **kwargs or self)."""
    import inspect

    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {
        name
        for name, param in inspect.signature(function).parameters.items()
        if name != "self" and param.kind not in skip
    }
