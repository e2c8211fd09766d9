"""EvalConfig: one validated object per evaluation, and every environment variable we read.

Layers, lowest first: field defaults < ``--config`` YAML file < flags. ``.env`` is loaded into the
process environment first (never overriding variables that are already set). Where results go
besides the bundle (W&B, the Hugging Face Hub) is not part of an evaluation: those options are
``eval_framework.sinks.settings.SinkSettings``, built from the same layers with ``merge_layers``
and ``validated``.
"""

from __future__ import annotations

import difflib
import io
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eval_framework import env
from eval_framework.errors import ConfigError, EvalFrameworkError
from eval_framework.models.auto_batch import BatchSizeField
from eval_framework.redact import redact, refuse_masked, register_secrets_in
from eval_framework.textfiles import load_yaml, read_text, yaml_error

log = logging.getLogger(__name__)

#: Every environment variable the project reads, with what it is for (mirrored in .env.example).
ENV_VARS: dict[str, str] = {var.name: var.help for var in env.VARS}


class EvalConfig(BaseModel):
    """Everything that defines one evaluation run (and nothing about where its results go)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: local, or determined: the process is a Determined trial (or runs one's --hparams locally)
    context: Literal["local", "determined"] = "local"
    models: Path | None = Field(None, description="Python file defining model classes")
    llm_name: str
    llm_args: dict[str, Any] = Field(default_factory=dict)
    task_name: str
    # Numbers are strict: `num_fewshot: true` in a config file is a mistake, not 1 shot.
    num_fewshot: int | None = Field(None, ge=0, strict=True)  #: None: the task's standard count
    num_samples: int | None = Field(None, ge=1, strict=True)
    subjects: tuple[str, ...] = ()
    seed: int = Field(1234, strict=True)
    #: samples per model batch, or "auto": the largest that fits in memory (models/auto_batch.py)
    batch_size: BatchSizeField = 8
    max_tokens: int | None = Field(None, ge=1, strict=True)
    output_dir: Path = Path("outputs")
    task_data_dir: Path | None = None
    overwrite: bool = False

    @field_validator("task_name")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty; pass a task name or the path of a task file")
        return value.strip()

    @field_validator("llm_name")
    @classmethod
    def _a_model(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "must not be empty; pass a class in --models, a dotted path, or hf/openai/embedded"
            )
        return value.strip()

    @field_validator("models", "output_dir", "task_data_dir", mode="before")
    @classmethod
    def _a_path(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():  # '' would mean the current directory
            raise ValueError("is empty; pass a path")
        return value

    def redacted(self) -> dict[str, Any]:
        """JSON-safe dump with secrets masked: what goes into metadata.json."""
        return dict(redact(self.model_dump(mode="json")))


def load_env(env_file: Path | None) -> Path | None:
    """Load ``env_file`` (must exist) or ``./.env`` (if present) into os.environ without overriding."""
    if env_file is not None:
        if env_file.is_dir():
            raise ConfigError(f"--env-file {env_file} is a directory; pass the path of a .env file")
        if not env_file.is_file():
            raise ConfigError(f"--env-file {env_file} does not exist; create it or drop the flag")
        _set_unset(env_file)
        return env_file
    default = Path.cwd() / ".env"
    if default.is_file():
        _set_unset(default)
        return default
    return None


def _set_unset(path: Path) -> None:
    """Variables the environment does not set yet. An empty value (``NAME=``, as in .env.example)
    means "not set": exported as "", it would reach libraries that cannot parse it."""
    text = read_text(path, f"env file {path}", ConfigError)
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:  # python-dotenv would skip the line with a warning of its own
            raise ConfigError(
                f"env file {path}:{binding.original.line} cannot be read as NAME=value "
                "(a line without '=', or an unclosed quote); fix the line"
            )
    for name, value in dotenv_values(stream=io.StringIO(text)).items():
        if value and name not in os.environ:
            os.environ[name] = value


def read_yaml_mapping(
    path: Path, what: str, error: type[EvalFrameworkError], expected: str
) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; every failure is ``error`` naming ``what``."""
    text = read_text(path, what, error)
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise yaml_error(path, what, exc, error) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{what} must hold a mapping of {expected}; write one 'name: value' per line")
    return data


def read_config_file(path: Path) -> dict[str, Any]:
    data = read_yaml_mapping(path, f"--config {path}", ConfigError, "option names to values")
    refuse_masked(data, f"--config {path}", ConfigError)  # e.g. --show-config's output, saved
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def split_list(value: Any, name: str) -> tuple[str, ...] | None:
    """``"a,b"``, ``["a", "b,c"]`` -> ``("a", "b", "c")``; None stays None; anything else is refused."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
        raise ConfigError(
            f"invalid --{name.replace('_', '-')}: expected names, as a list or one comma-separated "
            f"string, not {value!r}; fix the value"
        )
    return tuple(part.strip() for item in items for part in item.split(",") if part.strip())


def merge_layers(*layers: dict[str, Any], lists: Iterable[str] = ()) -> dict[str, Any]:
    """Layers merged, later ones winning; None means 'not given' (in a file too). The ``lists``
    options hold several values: a list, repeated flags, or one comma-separated string."""
    merged = {k: v for layer in layers for k, v in layer.items() if v is not None}
    for name in lists:
        if name in merged:
            merged[name] = split_list(merged[name], name)
    return merged


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Source:
    """Where option values came from, for messages: the command (whose --help lists them) and the
    keys that only the --config file gave."""

    command: str = "eval_framework"
    from_file: frozenset[str] = frozenset()
    #: how a file key is named in messages when it is not the top-level key (``tasks[1].num_fewshot``)
    labels: tuple[tuple[str, str], ...] = ()


def sources(file_values: dict[str, Any], flag_values: dict[str, Any], command: str) -> Source:
    return Source(command, frozenset(k for k in file_values if flag_values.get(k) is None))


def validated(
    model: type[M], values: dict[str, Any], also_known: Iterable[str] = (), source: Source = Source()
) -> M:
    """``model(**values)``; a failure is a ConfigError naming the flag or the config-file key (or
    the unknown config-file key, with the options it may have meant among the model's fields and
    ``also_known``)."""
    try:
        return model(**values)
    except ValidationError as exc:
        # an unknown key first: a misspelt option also makes the one meant "missing"
        first = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        loc = [str(p) for p in first["loc"]]
        if first["type"] == "extra_forbidden" and len(loc) == 1:
            known = [*model.model_fields, *also_known]
            close = difflib.get_close_matches(loc[0], known, n=2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise ConfigError(
                f"unknown option {loc[0]!r} in the --config file{hint}; see {source.command} --help "
                "for the options (write them with underscores or dashes)"
            ) from exc
        where = "--" + loc[0].replace("_", "-") + "".join(f".{p}" for p in loc[1:])
        if loc[0] in source.from_file:
            label = dict(source.labels).get(loc[0], loc[0])
            where = f"{label!r} in the --config file ({where})"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "missing":
            also = " (or --checkpoint, for a registry checkpoint)" if loc[0] == "llm_name" else ""
            raise ConfigError(f"{where} is missing: pass it{also}; see {source.command} --help") from exc
        raise ConfigError(f"invalid {where}: {message}; see {source.command} --help") from exc


def build_config(
    file_values: dict[str, Any], flag_values: dict[str, Any], also_known: Iterable[str] = ()
) -> EvalConfig:
    """Merge layers (flags win over the file) and validate. ``also_known``: option names that a
    command takes besides these (the sink options), offered when a config-file key is unknown."""
    merged = merge_layers(file_values, flag_values, lists=("subjects",))
    if isinstance(merged.get("llm_args"), dict):
        register_secrets_in(merged["llm_args"])
    return validated(EvalConfig, merged, also_known, sources(file_values, flag_values, "eval_framework"))
