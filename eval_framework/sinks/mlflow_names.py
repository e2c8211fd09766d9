"""Metric, param and tag names as MLflow takes them, by a reversible mapping.

MLflow accepts in a name only letters, digits, ``_ - . : / `` and space, and refuses names that
read as unusual paths (``a//b``, ``..a``, a trailing ``/``). The mapping keeps ``A-Z a-z 0-9 _ -
.`` as they are and writes every other character (``:``, ``/``, space, ``,``, non-ASCII), and a
leading ``.``, as ``:`` followed by two upper-case hex digits per UTF-8 byte, so ``acc,none``
becomes ``acc:2Cnone`` and ``f1/macro`` becomes ``f1:2Fmacro``. ``:`` never stands for itself in
a mapped name, so ``decode`` gives back the original exactly; ``/`` never appears in one, so
``<task>/<metric>`` splits unambiguously.
"""

from __future__ import annotations

import re

_KEPT = re.compile(r"[A-Za-z0-9_\-.]")
_ESCAPE = re.compile(r"(?::[0-9A-F]{2})+")
#: What MLflow allows in a key at most (metric, param and tag keys alike).
KEY_MAX = 250


def encode(name: str) -> str:
    """``name`` in MLflow's alphabet (see the module docstring)."""
    out = []
    for i, char in enumerate(name):
        if _KEPT.fullmatch(char) and not (i == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f":{byte:02X}" for byte in char.encode())
    return "".join(out)


def decode(mapped: str) -> str:
    """The name ``encode`` mapped to ``mapped``."""
    return _ESCAPE.sub(lambda m: bytes.fromhex(m.group(0).replace(":", "")).decode(), mapped)


def task_key(task: str, name: str) -> str:
    """``log_mode: multi_task``: a task's own metric or tag, ``<task>/<name>`` (both mapped)."""
    return f"{encode(task)}/{encode(name)}"


def split_task_key(key: str) -> tuple[str, str] | None:
    """``(task, name)`` of a ``task_key``, decoded; None for a key that is not one."""
    task, slash, name = key.partition("/")
    if not slash or not task or not name or "/" in name:
        return None
    return decode(task), decode(name)
