"""Find a task by name (built-in, embedded) or by the path of a task YAML file."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from eval_framework.embedded import embedded_task_files
from eval_framework.errors import ConfigError, TaskError
from eval_framework.tasks.base import Task
from eval_framework.tasks.builtin import BUILTIN_TASKS
from eval_framework.tasks.yaml_task import YamlTask


@dataclass(frozen=True)
class TaskInfo:
    name: str
    kind: str
    language: str
    metrics: tuple[str, ...]
    description: str
    source: str
    num_fewshot: int  #: the standard shot count, used when --num-fewshot is not given
    fewshot_rule: str
    stop: tuple[str, ...]  #: generation stop sequences (empty for multiple choice)


def _info(task: Task, source: str) -> TaskInfo:
    return TaskInfo(
        name=task.name,
        kind=task.kind,
        language=task.language,
        metrics=task.metrics,
        description=task.description,
        source=source,
        num_fewshot=task.default_fewshot,
        fewshot_rule=task.fewshot_rule(),
        stop=task.stop if task.kind == "generation" else (),
    )


def list_tasks() -> list[TaskInfo]:
    infos = [_info(cls(), cls.dataset_path) for cls in BUILTIN_TASKS.values()]
    infos += [_info(YamlTask(path), "embedded") for path in embedded_task_files().values()]
    return infos


def _known_names() -> list[str]:
    return [*BUILTIN_TASKS, *embedded_task_files()]


def get_task(name: str, subjects: tuple[str, ...] = (), data_dir: Path | None = None) -> Task:
    """Instantiate a task; raises TaskError with close names for unknown ones."""
    task: Task
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        path = Path(name).expanduser()
        if not path.is_file():
            raise TaskError(f"task file {name} does not exist; check the path")
        task = YamlTask(path, subjects, data_dir)
    else:
        by_lower = {n.lower(): n for n in _known_names()}
        canonical = by_lower.get(name.lower())
        if canonical is None:
            close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(by_lower[c] for c in close)}?" if close else ""
            raise TaskError(
                f"unknown task {name!r}.{hint} Run 'eval_framework tasks' for the list, "
                "or pass the path of a task YAML file"
            )
        if canonical in BUILTIN_TASKS:
            task = BUILTIN_TASKS[canonical](subjects, data_dir)
        else:
            task = YamlTask(embedded_task_files()[canonical], subjects, data_dir)
    _check_subjects(task, subjects)
    return task


def _check_subjects(task: Task, subjects: tuple[str, ...]) -> None:
    if not subjects:
        return
    available = task.available_subjects
    if not available:
        raise ConfigError(
            f"task {task.name} has no subjects, so --subjects {', '.join(subjects)} selects nothing; "
            "drop --subjects (a task file names its subject field with 'subject:')"
        )
    unknown = [s for s in subjects if s not in available]
    if unknown:
        close = difflib.get_close_matches(unknown[0], available, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        shown = ", ".join(available[:12]) + (
            f", ... ({len(available)} in all)" if len(available) > 12 else ""
        )
        raise ConfigError(
            f"unknown --subjects {', '.join(unknown)} for {task.name}{hint}; use one of: {shown}"
        )
