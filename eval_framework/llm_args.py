"""Parse ``--llm-args k=v`` pairs into typed, nested constructor arguments."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import yaml

from eval_framework.errors import ConfigError

#: Options that take several space-separated values after one flag (``--llm-args a=1 b=2``).
MULTI_VALUE_OPTIONS = frozenset({"--llm-args", "--wandb-tags"})


def _typed(raw: str) -> Any:
    """Read a value the way YAML would (1 -> int, true -> bool, [a, b] -> list), else keep the string."""
    if raw == "":
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # Dates and other YAML-specific scalars are surprising as model arguments: keep the text.
    return value if isinstance(value, str | int | float | bool | list | dict | type(None)) else raw


#: What follows a comma that ends one NAME=VALUE: another NAME=, or nothing (a trailing comma).
_NEXT_PAIR = re.compile(r"[\s,]*(?:[A-Za-z_][\w.]*=|$)")
_OPEN, _CLOSE = "[{(", "]})"


def _split_commas(pairs: Iterable[str]) -> Iterator[str]:
    """``a=1,b=2`` as ``a=1`` and ``b=2`` (lm-eval's form, which users bring along). A comma
    inside brackets or quotes (``a=[1, 2]``) or not followed by NAME= (``a=x,y``) stays in its
    value; empty entries (``a=1,,b=2``, a trailing comma) are dropped, as lm-eval drops them."""
    for pair in pairs:
        depth, quote, start = 0, "", 0
        for i, char in enumerate(pair):
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char in _OPEN:
                depth += 1
            elif char in _CLOSE:
                depth = max(0, depth - 1)
            elif char == "," and depth == 0 and _NEXT_PAIR.match(pair, i + 1):
                if pair[start:i].strip():
                    yield pair[start:i].strip()
                start = i + 1
        if pair[start:].strip() or start == 0:
            yield pair[start:].strip() if start else pair


def parse_llm_args(pairs: Iterable[str]) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b": {"c": "x"}}`` (``"a=1,b.c=x"`` too); raises
    ConfigError on bad syntax."""
    result: dict[str, Any] = {}
    for pair in _split_commas(pairs):
        key, sep, raw = pair.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not key or any(not p.isidentifier() for p in parts):
            raise ConfigError(
                f"bad --llm-args entry {pair!r}: expected NAME=VALUE with a Python-identifier name "
                "(nested names as a.b=VALUE), e.g. --llm-args checkpoint=./ckpt dtype=bfloat16"
            )
        node = result
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"bad --llm-args entry {pair!r}: '{part}' is already set to a plain value; "
                    "give it once, as a value or as a.b=... keys"
                )
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(
                f"bad --llm-args entry {pair!r}: '{key}' already has nested keys; "
                "give it once, as a value or as a.b=... keys"
            )
        if parts[-1] in node:  # the value is not shown: it may be a secret
            raise ConfigError(f"--llm-args {key} is given twice; give it once (which value did you mean?)")
        node[parts[-1]] = _typed(raw)
    return result


def expand_multi_value_options(
    argv: Sequence[str], options: frozenset[str] = MULTI_VALUE_OPTIONS
) -> list[str]:
    """Rewrite ``--opt a b`` as ``--opt a --opt b`` so a click option can take several values.

    Values run until the next token that starts with ``-``. ``--opt=a`` is left alone.
    """
    out: list[str] = []
    current: str | None = None
    for token in argv:
        if token.startswith("-"):
            current = token if token in options else None
            out.append(token)
            continue
        if current is not None and out and out[-1] != current:
            out.append(current)
        out.append(token)
    return out
