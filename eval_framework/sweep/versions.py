"""The versions a sweep evaluates: listed (a registry collection, or local checkpoint directories),
then selected (``--versions``), thinned (``--every``) and split among machines (``--shard``).

Everything here is decided before any model loads, and the same inputs always give the same list,
so the shards of a sweep and a rerun after a kill agree on what each machine evaluates.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from eval_framework.errors import ConfigError

#: Characters that make a sweep source a glob pattern (a local path, never a registry reference).
_GLOB = re.compile(r"[*?\[]")
_VERSION = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class Version:
    """One checkpoint of a sweep: a registry version or a local checkpoint directory."""

    label: str  #: what the user sees and selects by: ``v7``, or the directory as matched
    reference: str  #: the registry reference with its version (``.../llama-sft:v7``) or the directory
    local: bool
    number: int | None = None  #: the registry version's index (None for a directory)
    aliases: tuple[str, ...] = ()

    def llm_args(self) -> dict[str, Any]:
        """The model arguments that point an evaluation at this checkpoint."""
        return {"checkpoint": self.reference} if self.local else {"artifact_name": self.reference}

    @property
    def shown(self) -> str:
        """The label with the version's aliases (``v7 (prod)``), for progress and summaries."""
        others = [a for a in self.aliases if a != "latest"]
        return f"{self.label} ({', '.join(others)})" if others else self.label


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs by value: ``step-2`` before ``step-10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def is_local_source(source: str) -> bool:
    """A glob, an explicit path (``/``, ``.``, ``~``) or an existing directory; anything else is a
    registry reference (``llama-sft``, ``wandb-registry-model/llama-sft``)."""
    text = source.strip()
    return bool(_GLOB.search(text)) or text.startswith(("/", ".", "~")) or Path(text).is_dir()


def local_versions(source: str) -> list[Version]:
    """The checkpoint directories ``source`` names, in natural order of their paths: every
    directory a glob matches, or a directory that is itself a checkpoint (holds ``config.json``),
    or else each of its subdirectories."""
    text = str(Path(source.strip()).expanduser())
    if _GLOB.search(text):
        found = [Path(p) for p in glob.glob(text) if Path(p).is_dir()]
        if not found:
            raise ConfigError(
                f"no checkpoint directories match {source!r}; check the pattern (quote it so the shell "
                "passes it as is) and the current directory"
            )
    else:
        root = Path(text)
        if not root.is_dir():
            raise ConfigError(
                f"{source!r} is not a directory; pass a checkpoint directory, or a glob of them"
            )
        found = [root] if (root / "config.json").is_file() else [p for p in root.iterdir() if p.is_dir()]
        if not found:
            raise ConfigError(
                f"{source!r} holds no checkpoint directories; pass a directory or a glob of them"
            )
    ordered = sorted(found, key=lambda p: natural_key(str(p)))
    return [Version(label=str(p), reference=str(p), local=True) for p in ordered]


def registry_versions(source: str) -> list[Version]:
    """Every version of a registry collection, oldest first, through the W&B API."""
    from eval_framework.registry.resolver import Resolver

    resolver = Resolver()
    ref = resolver.parse(source)
    if ":" in source.strip():
        raise ConfigError(
            f"sweep and watch take a collection, not one version: drop ':{ref.alias}' from {source!r} and "
            "choose versions with --versions (e.g. --versions since:v3)"
        )
    listed = resolver.client.versions(ref)
    if not listed:
        raise ConfigError(f"{ref.project}/{ref.name} holds no versions yet; register one first")
    return [
        Version(f"v{n}", replace(ref, alias=f"v{n}").path, local=False, number=n, aliases=aliases)
        for n, aliases in listed
    ]


def list_versions(source: str) -> list[Version]:
    """The sweep's checkpoints, oldest first: local directories or a registry collection."""
    return local_versions(source) if is_local_source(source) else registry_versions(source)


# ---- --versions ------------------------------------------------------------------------------

SELECTION_FORMS = "all, last:N, vA..vB (inclusive), since:vN"


@dataclass(frozen=True)
class Selection:
    """A parsed ``--versions``: which of the listed versions to evaluate."""

    kind: Literal["all", "last", "range", "since"]
    count: int = 0  #: for last:N
    start: str = ""  #: first version (range, since)
    end: str = ""  #: last version (range)

    @classmethod
    def parse(cls, text: str | None) -> Selection:
        """``all`` (default), ``last:N``, ``vA..vB`` or ``since:vN``; refused before any lookup.
        For local directories the bounds are labels (a directory's path or name)."""
        value = (text or "all").strip()
        if value == "all":
            return cls("all")
        if value.startswith("last:"):
            count = value.removeprefix("last:")
            if not count.isdigit() or int(count) < 1:
                raise _bad(text, "last:N needs a whole number N of 1 or more, e.g. last:5")
            return cls("last", count=int(count))
        if value.startswith("since:"):
            start = value.removeprefix("since:").strip()
            if not start:
                raise _bad(text, "since: needs a version, e.g. since:v20")
            return cls("since", start=start)
        start, sep, end = value.partition("..")
        if sep and start.strip() and end.strip():
            first, last = _VERSION.match(start.strip()), _VERSION.match(end.strip())
            if first and last and int(first.group(1)) > int(last.group(1)):
                raise _bad(
                    text, f"the range ends before it starts; write v{last.group(1)}..v{first.group(1)}"
                )
            return cls("range", start=start.strip(), end=end.strip())
        raise _bad(text, "unknown form")

    def apply(self, versions: Sequence[Version]) -> list[Version]:
        """The selected versions, oldest first; a selection that holds none is refused, saying
        what there is."""
        chosen = list(versions)
        if self.kind == "last":
            chosen = chosen[-self.count :]
        elif self.kind in ("range", "since"):
            low = _position(versions, self.start, after=False)
            high = _position(versions, self.end, after=True) if self.kind == "range" else len(versions)
            chosen = list(versions[low:high])
        if not chosen:
            raise ConfigError(
                f"--versions {self.text} selects no version; there are {_span(versions)}: choose among them"
            )
        return chosen

    @property
    def text(self) -> str:
        return {"all": "all", "last": f"last:{self.count}", "since": f"since:{self.start}",
                "range": f"{self.start}..{self.end}"}[self.kind]  # fmt: skip


def _bad(text: str | None, why: str) -> ConfigError:
    return ConfigError(f"invalid --versions {text!r}: {why}; accepted forms: {SELECTION_FORMS}")


def _span(versions: Sequence[Version]) -> str:
    if not versions:
        return "no versions"
    if len(versions) == 1:
        return f"1 version ({versions[0].label})"
    return f"{len(versions)} versions ({versions[0].label} .. {versions[-1].label})"


def _position(versions: Sequence[Version], bound: str, after: bool) -> int:
    """Where a range bound cuts the list: before ``bound`` (a start) or after it (an end). A
    registry bound ``vN`` need not exist (``v3..v7`` with v5 deleted still works); a directory
    bound must name exactly one directory, by its path or its name."""
    number = _VERSION.match(bound)
    if number and all(v.number is not None for v in versions):
        n = int(number.group(1))
        return sum(1 for v in versions if v.number is not None and (v.number <= n if after else v.number < n))
    matches = [i for i, v in enumerate(versions) if bound in (v.label, Path(v.label).name)]
    if len(matches) != 1:
        why = "matches no version" if not matches else f"matches {len(matches)} directories (give its path)"
        raise ConfigError(f"--versions bound {bound!r} {why}; there are {_span(versions)}")
    return matches[0] + (1 if after else 0)


# ---- --every and --shard ---------------------------------------------------------------------


def every(versions: Sequence[Version], step: int | None) -> list[Version]:
    """Every ``step``-th version counting from the oldest, and always the newest (the checkpoint a
    team most wants to see is never thinned away)."""
    if step is None or step == 1:
        return list(versions)
    if step < 1:
        raise ConfigError(f"invalid --every {step}: give a whole number of 1 or more")
    kept = list(versions[::step])
    if versions and versions[-1] not in kept:
        kept.append(versions[-1])
    return kept


@dataclass(frozen=True)
class Shard:
    """``--shard i/n``: machine ``i`` of ``n`` (0-based, as array job indices are)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str | None) -> Shard | None:
        if text is None:
            return None
        index, sep, count = text.strip().partition("/")
        if not (sep and index.isdigit() and count.isdigit()):
            raise ConfigError(f"invalid --shard {text!r}: write i/n, e.g. 0/4 (i counts from 0 to n-1)")
        shard = cls(int(index), int(count))
        n = shard.count
        if n < 1:
            raise ConfigError(f"invalid --shard {text!r}: n must be 1 or more, e.g. 0/4")
        if shard.index >= n:
            raise ConfigError(
                f"invalid --shard {text!r}: i must be from 0 to n-1 "
                f"(the shards of {n} are 0/{n} .. {n - 1}/{n})"
            )
        return shard

    def take(self, versions: Sequence[Version]) -> list[Version]:
        """Round robin over the selection: shards differ by at most one version, and each holds
        old and new ones alike. Every shard must list the same selection: pin it with a range
        (``--versions v0..v40``) when versions may be registered while the shards start."""
        return [v for position, v in enumerate(versions) if position % self.count == self.index]


def choose(
    versions: Sequence[Version], selection: Selection, step: int | None = None, shard: Shard | None = None
) -> list[Version]:
    """Selection, then --every, then --shard: what this machine evaluates, oldest first."""
    chosen = every(selection.apply(versions), step)
    return shard.take(chosen) if shard is not None else chosen
