"""An invocation's evaluations: one EvalConfig per task, from ``--task-name A,B`` (or the flag
repeated) or a ``tasks:`` list in the --config file whose entries may set their own few-shot
count, sample count, subjects, seed and generation length.

Layers, lowest first: defaults < the file's top-level keys < the task's entry < flags. A
``--task-name`` on the command line replaces the file's task list; a task it names that the list
holds keeps that entry's settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eval_framework.config import EvalConfig, Source, merge_layers, split_list, validated
from eval_framework.errors import ConfigError
from eval_framework.redact import register_secrets_in

#: What a ``tasks:`` entry may set for its task alone; every other option is the invocation's.
PER_TASK = ("task_name", "num_fewshot", "num_samples", "subjects", "seed", "max_tokens")


#: An entry of the task list and where it came from: its index in the file's ``tasks:`` list,
#: or None (a --task-name flag, or the file's task_name).
Entry = tuple[int | None, dict[str, Any]]


def build_configs(
    file_values: dict[str, Any], flags: dict[str, Any], also_known: Iterable[str] = ()
) -> list[EvalConfig]:
    """One validated config per task, in the order given; identical ones once."""
    return [config for config, _ in configs_with_sources(file_values, flags, also_known)]


def configs_with_sources(
    file_values: dict[str, Any], flags: dict[str, Any], also_known: Iterable[str] = ()
) -> list[tuple[EvalConfig, dict[str, str]]]:
    """``build_configs``, each config with where each of its values came from: ``flag``,
    ``--config``, ``--config tasks[i]`` or ``default`` (for --show-config)."""
    shared = dict(file_values)
    entries, task_source = _task_entries(shared, flags)
    flag_layer = {k: v for k, v in flags.items() if k != "task_name"}
    if isinstance(shared.get("llm_args"), dict) and isinstance(flag_layer.get("llm_args"), dict):
        # model arguments merge key by key: --checkpoint keeps the file's device=...
        flag_layer["llm_args"] = {**shared["llm_args"], **flag_layer["llm_args"]}
    configs: dict[str, tuple[EvalConfig, dict[str, str]]] = {}
    for at, entry in entries or [(None, {})]:
        file_layer = {**shared, **entry}
        merged = merge_layers(file_layer, flag_layer, lists=("subjects",))
        if isinstance(merged.get("llm_args"), dict):
            register_secrets_in(merged["llm_args"])
        labels = tuple((k, f"tasks[{at}].{k}") for k in entry) if at is not None else ()
        from_file = frozenset(k for k in file_layer if flag_layer.get(k) is None)
        config = validated(EvalConfig, merged, also_known, Source("eval_framework", from_file, labels))
        sources = {
            key: "flag" if flag_layer.get(key) is not None
            else f"--config tasks[{at}]" if at is not None and key in entry
            else "--config" if key in shared
            else "default"
            for key in EvalConfig.model_fields
        }  # fmt: skip
        from_list = at is not None and task_source != "flag"
        sources["task_name"] = f"--config tasks[{at}]" if from_list else task_source
        configs.setdefault(config.model_dump_json(), (config, sources))
    return list(configs.values())


def _task_entries(shared: dict[str, Any], flags: dict[str, Any]) -> tuple[list[Entry], str]:
    """The invocation's task entries (``shared`` loses its task keys), and where a task name that
    is not from the ``tasks:`` list came from."""
    listed = shared.pop("tasks", None)
    file_task = shared.pop("task_name", None)
    if listed is not None and file_task is not None:
        raise ConfigError(
            "the --config file sets both task_name and tasks; keep one (tasks: lists several tasks, "
            "each with its own settings)"
        )
    entries: list[Entry] = (
        list(enumerate(_entries(listed)))
        if listed is not None
        else [(None, {"task_name": name}) for name in split_list(file_task, "task_name") or ()]
    )
    named = flags.get("task_name")
    if not named:
        return entries, "--config"
    chosen: list[Entry] = []
    for name in dict.fromkeys(named):  # --task-name's tasks, with the file's entries for them
        chosen += [e for e in entries if e[1].get("task_name") == name and e[0] is not None] or [
            (None, {"task_name": name})
        ]
    return chosen, "flag"


def _entries(listed: Any) -> list[dict[str, Any]]:
    """The ``tasks:`` list: names, or mappings of a task_name and its own settings."""
    if isinstance(listed, str):
        listed = list(split_list(listed, "tasks") or ())
    if not isinstance(listed, list) or not listed:
        raise ConfigError(
            "'tasks' in the --config file must be a non-empty list (or comma-separated names): task "
            "names, or mappings such as {task_name: ARC, num_fewshot: 25}"
        )
    entries = []
    for index, item in enumerate(listed):
        if isinstance(item, str) and item.strip():
            entries.append({"task_name": item.strip()})
            continue
        if not isinstance(item, dict):
            raise ConfigError(
                f"tasks[{index}] in the --config file is {item!r}; give a task name or a mapping with "
                "task_name (and any of num_fewshot, num_samples, subjects, seed, max_tokens)"
            )
        entry = {str(k).replace("-", "_"): v for k, v in item.items()}
        unknown = [k for k in entry if k not in PER_TASK]
        if unknown:
            raise ConfigError(
                f"tasks[{index}] in the --config file: unknown key {unknown[0]!r}; a task entry takes "
                f"{', '.join(PER_TASK)} (other options apply to every task: set them at the top level)"
            )
        name = entry.get("task_name")
        if name is None:
            raise ConfigError(f"tasks[{index}] in the --config file has no task_name; add one")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(
                f"tasks[{index}].task_name in the --config file is {name!r}; give one task name (text), "
                "one entry per task"
            )
        entries.append(entry)
    return entries
