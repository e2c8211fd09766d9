"""A Determined trial's hyperparameters as eval_framework settings.

Determined hands a trial its hyperparameters after the searcher chose them: a ``categorical`` one
arrives as its chosen value, a ``const`` one as its ``val``, a nested mapping (no ``type`` key) as
a mapping, a list as the list written. ``load_hparams`` checks that dict before anything else
happens: an unknown key is named with the keys that are read (and the one probably meant), a bad
value with its path (``hyperparameter task_args[1].num_fewshot: must be 0 or more``); both are a
ConfigError (exit 2). Numbers are strict: ``true`` is not 1.

``layers`` turns the hyperparameters into what the command line already builds:

- ``evaluation``: keys for ``invocation_config.build_configs``: llm_name, llm_args (``checkpoint``
  becomes ``llm_args.artifact_name``, as ``--checkpoint`` does; ``llm_name`` is then ``hf`` unless
  given anywhere), models, output_dir, batch_size, and ``tasks``: one entry per ``task_args``
  entry (``task_subjects`` -> ``subjects``).
- ``sinks``: keys for ``sinks.settings.build_sink_settings`` (wandb_*, hf_upload_*).
- ``auto_export``: the same block as a --config file's (destinations, configs).
- ``description`` and ``experiment_name``: not settings; kept for the caller to record.

``batch_size`` is one per invocation (the tasks of one trial share one model load): a task entry
may set it, every entry that does must set the same value, and that value is the trial's.

Precedence: a hyperparameter that is set wins over the command line and the --config file, false
and zero included (``wandb_upload_results: false`` beats ``--wandb-upload-results``,
``num_fewshot: 0`` beats ``--num-fewshot 5``); one that is not given (absent or null) leaves the
flag or file value. ``llm_args`` merge key by key (a hyperparameter ``checkpoint`` keeps
``--llm-args device=cuda``). ``task_args`` is the trial's task list: it replaces ``--task-name``
and the file's ``task_name``/``tasks``; a per-task flag (``--num-fewshot``) still applies to the
tasks whose entry does not set that key. ``merged_over`` (flags), ``evaluation_inputs`` (the two
arguments of build_configs) and ``merged_auto_export`` apply the rule; all are pure functions.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from eval_framework.errors import ConfigError
from eval_framework.exporting import AutoExport
from eval_framework.invocation_config import PER_TASK
from eval_framework.models.auto_batch import BatchSizeField
from eval_framework.redact import register_secrets_in, scrub
from eval_framework.registry.reference import parse_reference
from eval_framework.sinks.settings import SinkSettings

#: What to do about any bad hyperparameter.
_FIX = "fix it in the experiment file's hyperparameters"
#: Hyperparameters that go to SinkSettings (same names).
SINK_KEYS = (
    "wandb_project",
    "wandb_entity",
    "wandb_group",
    "wandb_run_id",
    "wandb_upload_results",
    "hf_upload_repo",
    "hf_upload_dir",
)


class TaskArgs(BaseModel):
    """One ``task_args`` entry: a task and its own settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_name: str
    num_fewshot: int | None = Field(None, ge=0, strict=True)
    num_samples: int | None = Field(None, ge=1, strict=True)
    max_tokens: int | None = Field(None, ge=1, strict=True)
    batch_size: BatchSizeField | None = None
    #: a list, or one comma-separated string
    task_subjects: tuple[str, ...] | None = None

    @field_validator("task_name")
    @classmethod
    def _a_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty: give a built-in task name or the path of a task file")
        return value.strip()

    @field_validator("task_subjects", mode="before")
    @classmethod
    def _subjects(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list | tuple) and all(isinstance(item, str) for item in items):
            return tuple(part.strip() for item in items for part in item.split(",") if part.strip())
        return value  # refused by the type, naming the bad item


class DeterminedHparams(BaseModel):
    """The hyperparameters eval_framework reads from a trial (every one optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    llm_name: str | None = None
    llm_args: dict[str, Any] | None = None
    models: Path | None = None
    checkpoint: str | None = None
    output_dir: Path | None = None
    wandb_project: str | None = None
    wandb_entity: str | None = None
    wandb_group: str | None = None
    wandb_run_id: str | None = None
    wandb_upload_results: bool | None = Field(None, strict=True)
    hf_upload_repo: str | None = None
    hf_upload_dir: str | None = None
    description: str | None = None
    experiment_name: str | None = None
    auto_export: AutoExport | None = None
    #: one mapping or a list of them (held as a list)
    task_args: list[TaskArgs] | None = Field(None, min_length=1)

    @field_validator("task_args", mode="before")
    @classmethod
    def _one_or_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, Mapping) else value

    @field_validator("experiment_name", "description", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        """A name or description written as a number (``experiment_name: 7``) is that text."""
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("llm_name", "experiment_name")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value.strip() if value is not None else None

    @field_validator("models", "output_dir", mode="before")
    @classmethod
    def _a_path(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():  # '' would mean the current directory
            raise ValueError("must not be empty: give a path")
        if value is not None and not isinstance(value, str | Path):
            raise ValueError(f"must be a path, not {_shown(value)}")
        return value

    @field_validator("checkpoint")
    @classmethod
    def _a_reference(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_reference(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value.strip()

    @field_validator(*SINK_KEYS[:4], "hf_upload_repo")
    @classmethod
    def _sink_form(cls, value: str | None, info: ValidationInfo) -> str | None:
        """The form SinkSettings wants (a project name, owner/name), checked here so that the
        message names the hyperparameter rather than a flag."""
        if value is not None:
            try:
                SinkSettings.model_validate({info.field_name or "": value})
            except ValidationError as exc:
                raise ValueError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeterminedHparams:
        sizes = [(i, t.batch_size) for i, t in enumerate(self.task_args or ()) if t.batch_size is not None]
        for index, size in sizes[1:]:
            first, first_size = sizes[0]
            if size != first_size:
                raise _Conflict(
                    f"task_args[{index}].batch_size",
                    f"{size} differs from task_args[{first}].batch_size ({first_size}): the tasks of "
                    "one trial share one model load and one batch size; set the same value (or set "
                    "it once), or evaluate these tasks in separate trials",
                )
        named = (self.llm_args or {}).get("artifact_name")
        if self.checkpoint is not None and named is not None and named != self.checkpoint:
            raise _Conflict(
                "checkpoint",
                f"llm_args.artifact_name names another checkpoint ({named!r}); keep one of them",
            )
        return self


class _Conflict(ValueError):
    """Two hyperparameters that do not fit together; ``path`` is the one named."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(why)
        self.path, self.why = path, why


def load_hparams(hparams: Any) -> DeterminedHparams:
    """The trial's hyperparameters (``ClusterInfo.trial.hparams``), validated; a ConfigError that
    names the bad hyperparameter otherwise."""
    if not isinstance(hparams, Mapping):
        raise ConfigError(
            f"the trial's hyperparameters must be a mapping of names to values, not {_shown(hparams)}; "
            "write them under 'hyperparameters:' in the experiment file"
        )
    if isinstance(hparams.get("llm_args"), Mapping):
        register_secrets_in(hparams["llm_args"])  # an api_key there never reaches a message
    try:
        return DeterminedHparams.model_validate(dict(hparams))
    except ValidationError as exc:
        # an unknown key first: a misspelt name explains the "missing" error that comes with it
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        conflict = (first.get("ctx") or {}).get("error")
        if isinstance(conflict, _Conflict):
            raise ConfigError(scrub(f"hyperparameter {conflict.path}: {conflict.why}")) from exc
        single = isinstance(hparams.get("task_args"), Mapping)
        others = errors[1:]
        message = _message(first, single, 1)
        if others:  # each said, not counted: a user fixes them in one go
            message += "; also: " + "; ".join(_message(e, single, 1) for e in others[:3])
            message += f" (and {len(others) - 3} more)" if len(others) > 3 else ""
        raise ConfigError(scrub(message)) from exc


#: The keys each part of the hyperparameters takes, for an unknown key's message.
_KNOWN = {
    "": list(DeterminedHparams.model_fields),
    "task_args": list(TaskArgs.model_fields),
    "auto_export": list(AutoExport.model_fields),
}

_TAKES = {"": "eval_framework reads", "task_args": "a task_args entry takes"}


def _message(error: ErrorDetails, single_task: bool, count: int) -> str:
    loc = list(error["loc"])
    if single_task and loc[:1] == ["task_args"] and len(loc) > 1 and loc[1] == 0:
        del loc[1]  # one mapping was given: no index to show
    path = _path(loc)
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    if error["type"] == "extra_forbidden":
        part = "" if len(loc) == 1 else str(loc[0])
        known = _KNOWN.get(part, [])
        close = difflib.get_close_matches(str(loc[-1]), known, n=2)
        if not close and not part:  # a task's key written at the top level: where it belongs
            for owner in ("task_args", "auto_export"):
                near = difflib.get_close_matches(str(loc[-1]), _KNOWN[owner], n=1, cutoff=0.85)
                close += [f"{owner}.{key}" for key in near]
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        takes = _TAKES.get(part, f"{part} takes")
        return f"unknown hyperparameter {path}{hint}; {takes} {', '.join(known)}: rename or remove it{more}"
    if error["type"] == "missing":
        return f"hyperparameter {path} is missing; add it to the experiment file's hyperparameters{more}"
    return f"hyperparameter {path}: {_why(error, loc)}; {_FIX}{more}"


def _path(loc: list[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _why(error: ErrorDetails, loc: list[int | str]) -> str:
    """Why a value is refused, in words; a value under llm_args is never shown (it may be a secret)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    given = _kind(error["input"]) if loc[:1] == ["llm_args"] else _shown(error["input"])
    if loc == ["task_args"] and kind == "list_type":
        return f"must be a mapping with task_name (one task) or a list of them, not {given}"
    mapping = f"must be a mapping (name: value), not {given}"
    reasons = {
        "greater_than_equal": f"must be {ctx.get('ge')} or more, not {given}",
        "int_type": f"must be a whole number, not {given}",
        "bool_type": f"must be true or false, not {given}",
        "string_type": f"must be text, not {given}",
        "dict_type": mapping,
        "model_type": mapping,
        "list_type": f"must be a list, not {given}",
        "tuple_type": f"must be a list or one comma-separated string, not {given}",
        "too_short": "must not be empty",
    }
    if kind in reasons:
        return reasons[kind]
    return str(error["msg"]).removeprefix("Value error, ")


def _kind(value: Any) -> str:
    """What a value is, without the value."""
    if isinstance(value, bool):
        return "true or false"
    return {str: "text", int: "a number", float: "a number"}.get(type(value), _shown(value))


def _shown(value: Any) -> str:
    """A value as the YAML that gave it reads (true, not True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


@dataclass(frozen=True)
class HparamLayers:
    """The hyperparameters as the command line's layers (None / absent: not given)."""

    #: build_configs keys: llm_name, llm_args, models, output_dir, batch_size, and ``tasks``
    evaluation: dict[str, Any] = field(default_factory=dict)
    #: build_sink_settings keys
    sinks: dict[str, Any] = field(default_factory=dict)
    #: an auto_export block: destinations and configs
    auto_export: dict[str, Any] | None = None
    description: str | None = None
    experiment_name: str | None = None


def layers(hparams: DeterminedHparams) -> HparamLayers:
    """Validated hyperparameters as layers; only the keys that are set appear."""
    # a null model argument is "not given", like any null hyperparameter: the flag's stays
    given_args = {k: v for k, v in (hparams.llm_args or {}).items() if v is not None}
    evaluation: dict[str, Any] = {
        "llm_name": hparams.llm_name,
        "models": hparams.models,
        "output_dir": hparams.output_dir,
        "llm_args": given_args if hparams.llm_args is not None else None,
    }
    if hparams.checkpoint is not None:
        evaluation["llm_args"] = {**(evaluation["llm_args"] or {}), "artifact_name": hparams.checkpoint}
    if hparams.task_args is not None:
        evaluation["tasks"] = [_entry(task) for task in hparams.task_args]
        sizes = [t.batch_size for t in hparams.task_args if t.batch_size is not None]
        evaluation["batch_size"] = sizes[0] if sizes else None  # all equal: checked when loaded
    sinks = {name: getattr(hparams, name) for name in SINK_KEYS}
    auto = hparams.auto_export.model_dump() if hparams.auto_export is not None else None
    return HparamLayers(
        evaluation={k: v for k, v in evaluation.items() if v is not None},
        sinks={k: v for k, v in sinks.items() if v is not None},
        auto_export=auto,
        description=hparams.description,
        experiment_name=hparams.experiment_name,
    )


def _entry(task: TaskArgs) -> dict[str, Any]:
    """A ``tasks:`` entry for build_configs (PER_TASK keys only; batch_size is the invocation's)."""
    entry: dict[str, Any] = {
        "task_name": task.task_name,
        "num_fewshot": task.num_fewshot,
        "num_samples": task.num_samples,
        "max_tokens": task.max_tokens,
        "subjects": list(task.task_subjects) if task.task_subjects is not None else None,
    }
    return {k: v for k, v in entry.items() if v is not None}


def merged_over(flags: Mapping[str, Any], hparam_layer: Mapping[str, Any]) -> dict[str, Any]:
    """``flags`` with every hyperparameter that is set (not None) in its place, false and zero
    included; ``llm_args`` merge key by key, the hyperparameters' winning."""
    merged = dict(flags)
    for name, value in hparam_layer.items():
        if value is None:
            continue
        below = merged.get(name)
        if name == "llm_args" and isinstance(below, Mapping) and isinstance(value, Mapping):
            value = {**below, **value}
        merged[name] = value
    return merged


def evaluation_inputs(
    file_values: Mapping[str, Any], flags: Mapping[str, Any], evaluation: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``(file_values, flags)`` to pass to build_configs, the hyperparameters' ``evaluation``
    layer over both. Given ``tasks``, they are the task list: --task-name and the file's
    task_name/tasks give way; a per-task flag moves into the entries that do not set that key
    (a flag would otherwise beat every entry), and stays a flag when no entry sets it."""
    tasks = evaluation.get("tasks")
    merged = merged_over(flags, {k: v for k, v in evaluation.items() if k != "tasks"})
    if merged.get("llm_args") is not None and merged.get("llm_name") is None:
        # a checkpoint, as --checkpoint: the hf backend unless a model is named anywhere
        from_checkpoint = "artifact_name" in (evaluation.get("llm_args") or {})
        if from_checkpoint and file_values.get("llm_name") is None:
            merged["llm_name"] = "hf"
    files = dict(file_values)
    if tasks is None:
        return files, merged
    files.pop("task_name", None)
    files.pop("tasks", None)
    merged["task_name"] = None
    set_somewhere = {k for entry in tasks for k in entry if k != "task_name"}
    moved = {k: merged.pop(k) for k in PER_TASK if k in set_somewhere and merged.get(k) is not None}
    files["tasks"] = [{**moved, **entry} for entry in tasks]
    return files, merged


def merged_auto_export(lower: AutoExport | None, block: Mapping[str, Any] | None) -> AutoExport | None:
    """The hyperparameters' auto_export over the one the command line gave (--config, --export-config):
    its destinations replace the lower ones; its configs are merged over theirs per destination."""
    if block is None:
        return lower
    configs = {name: dict(keys) for name, keys in (lower.configs if lower else {}).items()}
    for name, keys in (block.get("configs") or {}).items():
        configs[name] = {**configs.get(name, {}), **keys}
    return AutoExport(destinations=list(block["destinations"]), configs=configs)
