"""Benchmarks: types, built-in tasks, YAML tasks over local files, few-shot assembly."""

from eval_framework.tasks.base import Sample, Task
from eval_framework.tasks.registry import TaskInfo, get_task, list_tasks

__all__ = ["Sample", "Task", "TaskInfo", "get_task", "list_tasks"]
