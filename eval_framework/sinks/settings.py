"""Where results go besides the bundle: the ``--wandb-*`` and ``--hf-*`` options as one validated
object, built from the same layers as the evaluation's config (field defaults < ``--config`` YAML
file < flags). None of it changes results, so none of it is in a bundle or its key."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from eval_framework.config import merge_layers, sources, validated

if TYPE_CHECKING:
    from eval_framework.sinks.publish import PublishOptions

#: A config-file key that starts so is a sink option (a misspelt one is named, not ignored).
PREFIXES = ("wandb_", "hf_")

#: Fields with a fixed form: the pattern, and how to say what a value must be.
_FORMS = {
    "wandb_project": (
        r"[^/\\#?%:]{1,128}",
        "a W&B project name; use up to 128 characters without / \\ # ? % :",
    ),
    "wandb_entity": (
        r"[^/\\#?%:]{1,128}",
        "a W&B entity name; use up to 128 characters without / \\ # ? % :",
    ),
    "wandb_registry": (
        r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)?",
        "a registry; use NAME or NAME/COLLECTION with letters, digits, '.', '-' or '_'",
    ),
    "wandb_run_id": (r"[A-Za-z0-9_\-]{1,64}", "a W&B run id; use 1-64 letters, digits, '-' or '_'"),
    "hf_upload_repo": (
        r"[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+",
        "a repo id; use owner/name, e.g. my-org/eval-results",
    ),
}


class SinkSettings(BaseModel):
    """The sinks a command sends finished bundles to (W&B is on with a project, the Hub with a repo)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wandb_project: str | None = None
    wandb_entity: str | None = None
    wandb_group: str | None = None
    wandb_run_id: str | None = None
    wandb_tags: tuple[str, ...] = ()
    wandb_mode: Literal["online", "offline", "disabled"] | None = None
    wandb_upload_results: bool = True
    wandb_registry: str | None = None
    wandb_table_rows: int = Field(1000, ge=0, strict=True)
    hf_upload_repo: str | None = None
    hf_upload_dir: str = ""

    @field_validator("wandb_project", "wandb_entity", "wandb_registry", "wandb_run_id", "hf_upload_repo")
    @classmethod
    def _well_formed(cls, value: str | None, info: ValidationInfo) -> str | None:
        pattern, what = _FORMS[info.field_name or ""]
        if value is not None and not re.fullmatch(pattern, value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    def publish_options(self) -> PublishOptions:
        """The sinks these settings ask for."""
        from eval_framework.sinks.hf_hub import HfUploadOptions
        from eval_framework.sinks.publish import PublishOptions
        from eval_framework.sinks.wandb_spec import WandbOptions

        wandb = None
        if self.wandb_project:
            wandb = WandbOptions(
                project=self.wandb_project, entity=self.wandb_entity, group=self.wandb_group,
                run_id=self.wandb_run_id, tags=self.wandb_tags, mode=self.wandb_mode,
                upload_results=self.wandb_upload_results, registry=self.wandb_registry,
                table_rows=self.wandb_table_rows,
            )  # fmt: skip
        hf = HfUploadOptions(self.hf_upload_repo, self.hf_upload_dir) if self.hf_upload_repo else None
        return PublishOptions(wandb=wandb, hf=hf)


def is_sink_key(name: str) -> bool:
    return name.startswith(PREFIXES)


def sink_keys(values: dict[str, Any]) -> dict[str, Any]:
    """The sink options among a config file's keys (the other keys are the evaluation's)."""
    return {k: v for k, v in values.items() if is_sink_key(k)}


def build_sink_settings(
    file_values: dict[str, Any], flag_values: dict[str, Any], command: str = "eval_framework"
) -> SinkSettings:
    """Merge layers (flags win over the file; None means 'not given') and validate; a bad value is a
    ConfigError naming its flag (or config-file key) and ``command``'s help, as for the evaluation's
    options."""
    given = sink_keys(file_values)
    merged = merge_layers(given, flag_values, lists=("wandb_tags",))
    return validated(SinkSettings, merged, source=sources(given, flag_values, command))
