"""Read the text files users hand us (config, .env, task YAML, data files) with one clear error.

Files saved by Windows editors often start with a byte-order mark or are UTF-16; those are
decoded as their mark says. Anything else must be UTF-8: a file in another encoding is refused
naming the file, the line and column of the first bad byte, and how to fix it, instead of a
``UnicodeDecodeError`` traceback or silently misread text.
"""

from __future__ import annotations

import codecs
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from eval_framework.errors import EvalFrameworkError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, what: str, error: type[EvalFrameworkError]) -> str:
    """Decode ``data`` by its byte-order mark, else as strict UTF-8; ``error`` names ``what``."""
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise error(
            f"{what} is not {encoding.upper().replace('-SIG', '')} text (byte 0x{bad} at line {line}, "
            f"column {column}); save it as UTF-8 and retry"
        ) from exc
    nul = data.find(b"\0") if encoding == "utf-8" else -1
    if nul >= 0:  # valid UTF-8 bytes, but no text holds NUL: UTF-16 without its byte-order mark
        line = data.count(b"\n", 0, nul) + 1
        column = nul - (data.rfind(b"\n", 0, nul) + 1) + 1
        raise error(
            f"{what} is not UTF-8 text (a NUL byte at line {line}, column {column}: UTF-16 without a "
            "byte-order mark?); save it as UTF-8 and retry"
        )
    return text


def read_text(path: Path, what: str, error: type[EvalFrameworkError]) -> str:
    """The decoded text of a user file; a missing or unreadable file is ``error`` naming ``what``."""
    try:
        data = path.read_bytes()
    except IsADirectoryError as exc:
        raise error(f"{what} is a directory; pass the path of a file") from exc
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}; check the path") from exc
    return decode_text(data, what, error)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last one
    silently, so a second ``name:`` would quietly win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base loader refuses it with its own message
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML text as data: keys written twice are refused, and nesting too deep for the parser is a
    YAMLError like any other malformed file."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except RecursionError as exc:
        raise yaml.YAMLError("nested too deeply to read") from exc


def yaml_error(
    path: Path, what: str, exc: yaml.YAMLError, error: type[EvalFrameworkError]
) -> EvalFrameworkError:
    """One line for a YAML syntax error, 'what is not valid YAML (path:line:column: problem)', without
    the excerpt of the file that PyYAML prints."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc).splitlines()[0]
    where = f"{path}:{mark.line + 1}:{mark.column + 1}: " if mark is not None else ""
    return error(f"{what} is not valid YAML ({where}{problem}); fix the syntax and retry")
