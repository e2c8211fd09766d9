"""Tasks defined in a YAML file over local data files: private benchmarks without Python."""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eval_framework.config import read_yaml_mapping
from eval_framework.errors import ConfigError, TaskDefinitionError, TaskError, brief
from eval_framework.fingerprint import file_sha256
from eval_framework.tasks.base import Sample, Task
from eval_framework.tasks.local_data import read_rows

_LETTERS = string.ascii_uppercase


class DataFiles(BaseModel):
    model_config = ConfigDict(extra="forbid")
    eval: str
    fewshot: str | None = None


class TaskSpec(BaseModel):
    """Schema of a task YAML file (documented in docs/tasks.md)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: Literal["multiple_choice", "generation"] = "multiple_choice"
    language: str = "en"
    description: str = ""
    data: DataFiles
    prompt: str = Field(min_length=1, description="template over row fields, e.g. 'Q: {question}\\nA:'")
    choices: str | list[str] | None = None
    target: str = Field(min_length=1, description="row field holding the answer")
    answer: str | None = None
    subject: str | None = None
    id: str | None = None
    metrics: list[str] | None = Field(None, min_length=1)
    num_fewshot: int = Field(0, ge=0, strict=True, description="shots when --num-fewshot is not given")
    fewshot_sampler: Literal["random", "first_n"] = "random"
    fewshot_separator: str = "\n\n"
    continuation_prefix: str = " "
    stop: list[str] = Field(default_factory=lambda: ["\n\n"])
    max_tokens: int = Field(64, ge=1)
    answer_regex: str | None = None

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if self.kind == "multiple_choice" and not self.choices:
            raise ValueError("multiple_choice tasks need 'choices' (a row field or a list of templates)")
        if self.answer_regex:
            try:
                pattern = re.compile(self.answer_regex)
            except re.error as exc:
                raise ValueError(f"answer_regex is not a valid regular expression: {exc}") from exc
            if pattern.groups < 1:
                raise ValueError("answer_regex needs one capturing group around the answer")
        templates = [
            self.prompt,
            self.answer or "",
            *(self.choices if isinstance(self.choices, list) else []),
        ]
        for template in templates:
            _check_template(template)
        if self.metrics and len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"metrics {self.metrics} name one metric twice; name each once")
        allowed = {"multiple_choice": {"acc", "acc_norm", "acc_bytes"}, "generation": {"exact_match"}}[
            self.kind
        ]
        bad = set(self.metrics or ()) - allowed
        if bad:
            raise ValueError(f"metrics {sorted(bad)} do not apply to {self.kind}; use {sorted(allowed)}")
        return self


def _check_template(template: str) -> None:
    """Fields by plain name only: ``{text.upper}`` or ``{row[0]}`` would put Python objects (with
    memory addresses) into prompts, which then differ from run to run."""
    try:
        fields = [(n, spec, conv) for _, n, spec, conv in string.Formatter().parse(template) if n is not None]
    except ValueError as exc:
        raise ValueError(f"template {template!r} is not a valid format string: {exc}") from exc
    for name, spec, conversion in fields:
        if not name or name.isdigit() or any(c in name for c in ".[]") or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ValueError(
                f"template {template!r} uses {{{shown}}}; use plain field names like {{question}} "
                "(no attribute access, indexing, positional fields, conversions or format specs: the "
                "text goes into the prompt as the data has it)"
            )


def _text(value: Any, where: str, what: str) -> str:
    """A data value that becomes prompt, choice, answer, id or subject text: a string, or a
    number or boolean written as such. null, lists, objects and non-finite numbers are refused:
    they would reach the model as Python's spelling of them ("None", "[1, 2]", "nan")."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return str(getattr(value, "text", value))  # a JSON decimal as the data wrote it (7.50)
    shown = "null" if value is None else type(value).__name__ if not isinstance(value, float) else repr(value)
    raise TaskError(f"{where}: {what} is {shown}, not text or a number; fix the data")


def _format(template: str, row: dict[str, Any], where: str) -> str:
    names = {n for _, n, _, _ in string.Formatter().parse(template) if n}
    values = {n: _text(row[n], where, f"field {n!r}") for n in names if n in row}
    try:
        return template.format(**values)
    except KeyError as exc:
        raise TaskError(
            f"{where}: template {template!r} uses field {exc.args[0]!r}, which the row lacks; fix the "
            f"template or the data (row fields: {', '.join(row)})"
        ) from exc
    except (IndexError, ValueError) as exc:
        raise TaskError(
            f"{where}: template {template!r} cannot be filled: {brief(exc)}; fix the template"
        ) from exc


class YamlTask(Task):
    # 2: a target equal to a choice's text means that choice; letters are upper case.
    # 3: JSON decimal numbers are written as the data has them (7.50, 1e3).
    # 4: few-shot examples drawn by lm-eval's rule (docs/tasks.md); acc_norm per character.
    prompt_version = 4

    def __init__(self, path: Path, subjects: tuple[str, ...] = (), data_dir: Path | None = None) -> None:
        if data_dir is not None:
            raise ConfigError(
                f"--task-data-dir applies to built-in benchmarks; the task file {path} names its own data "
                "files (data.eval, data.fewshot): drop the flag or edit those paths"
            )
        super().__init__(subjects, data_dir)
        self.path = path
        self.spec = load_spec(path)
        self.name = self.spec.name
        self.kind = self.spec.kind
        self.language = self.spec.language
        self.description = self.spec.description
        self.metrics = tuple(
            self.spec.metrics or (["acc", "acc_norm"] if self.kind == "multiple_choice" else ["exact_match"])
        )
        self.fewshot_separator = self.spec.fewshot_separator
        self.continuation_prefix = self.spec.continuation_prefix
        self.stop = tuple(self.spec.stop)
        self.max_tokens = self.spec.max_tokens
        self.default_fewshot = self.spec.num_fewshot
        self.fewshot_sampler = self.spec.fewshot_sampler
        # A row never shows itself as an example, also when the few-shot file repeats it.
        self.fewshot_same_split = True
        self._cache: dict[str, list[Sample]] = {}

    def _data_path(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        return p if p.is_absolute() else (self.path.parent / p)

    def _all_samples(self, which: str) -> list[Sample]:
        if which not in self._cache:
            rel = self.spec.data.eval if which == "eval" else self.spec.data.fewshot
            if rel is None:
                return []
            path = self._data_path(rel)
            rows = read_rows(path)
            samples = [self._row_to_sample(row, i, f"{path.name} row {i}") for i, row in enumerate(rows)]
            first: dict[str, int] = {}
            for i, sample in enumerate(samples):
                if sample.id in first:
                    raise TaskError(
                        f"{path.name} rows {first[sample.id]} and {i} have one id {sample.id!r} (field "
                        f"{self.spec.id!r}); give every row its own id, so results name one row each"
                    )
                first[sample.id] = i
            self._cache[which] = samples
        return self._cache[which]

    def _samples(self, which: str) -> list[Sample]:
        samples = self._all_samples(which)
        if self.selected_subjects:
            samples = [s for s in samples if s.subject in self.selected_subjects]
        return samples

    def _row_to_sample(self, row: dict[str, Any], index: int, where: str) -> Sample:
        spec = self.spec
        if spec.target not in row:
            raise TaskError(
                f"{where} lacks the target field {spec.target!r}; fix 'target' or the data "
                f"(row fields: {', '.join(row)})"
            )
        prompt = _format(spec.prompt, row, where)
        subject = (
            _text(row[spec.subject], where, f"subject field {spec.subject!r}")
            if spec.subject and row.get(spec.subject) is not None
            else None
        )
        if spec.id and spec.id not in row:
            raise TaskError(f"{where} lacks the id field {spec.id!r}; fix 'id' or the data (row fields: "
                            f"{', '.join(row)})")  # fmt: skip
        if spec.id and (isinstance(row[spec.id], bool | float) or row[spec.id] is None):
            raise TaskError(f"{where}: id field {spec.id!r} is {row[spec.id]!r}; use text or whole numbers")
        sample_id = _text(row[spec.id], where, f"id field {spec.id!r}") if spec.id else str(index)
        raw_target = row[spec.target]
        if spec.kind == "generation":
            gold = _text(raw_target, where, f"target field {spec.target!r}")
            answer = _format(spec.answer, row, where) if spec.answer else gold
            return Sample(sample_id, prompt, gold, subject=subject, answer_text=answer)
        if isinstance(spec.choices, str):
            if not isinstance(row.get(spec.choices), list):
                raise TaskError(
                    f"{where}: choices field {spec.choices!r} must hold a list; fix the row or 'choices'"
                )
            choices = tuple(
                _text(c, where, f"choice {i} of field {spec.choices!r}")
                for i, c in enumerate(row[spec.choices])
            )
        else:
            choices = tuple(_format(t, row, where) for t in spec.choices or ())
        index = self._target_index(raw_target, choices, where)
        return Sample(sample_id, prompt, index, choices=choices, subject=subject)

    @staticmethod
    def _target_index(raw: Any, choices: tuple[str, ...], where: str) -> int:
        if isinstance(raw, bool):
            raise TaskError(f"{where}: target {raw!r} is not an index, letter or choice text; fix the row")
        # A choice's exact text wins: choices "A".."D" or "1".."4" with a target naming one of them
        # mean that choice, not the letter's or number's position.
        if isinstance(raw, str) and raw in choices:
            if choices.count(raw) > 1:
                raise TaskError(
                    f"{where}: target {raw!r} names {choices.count(raw)} of the choices; make the choices "
                    "distinct or give the target as an index"
                )
            index = choices.index(raw)
        elif isinstance(raw, int) or (
            isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit()
        ):
            index = int(raw)
        elif isinstance(raw, str) and len(raw.strip()) == 1 and raw.strip() in _LETTERS:
            index = _LETTERS.index(raw.strip())
        else:
            raise TaskError(
                f"{where}: target {raw!r} is not an index, letter or one of the choices; fix the row"
            )
        if not 0 <= index < len(choices):
            shown = f"index {index}" if isinstance(raw, int) else f"{raw!r} (index {index})"
            raise TaskError(
                f"{where}: target {shown} is out of range for {len(choices)} choices; fix the row"
            )
        return index

    @property
    def available_subjects(self) -> tuple[str, ...]:
        """The subjects in the evaluation data (when the task names a subject field)."""
        if not self.spec.subject:
            return ()
        return tuple(sorted({s.subject for s in self._all_samples("eval") if s.subject is not None}))

    def eval_samples(self) -> list[Sample]:
        samples = self._samples("eval")
        if not samples:
            raise TaskError(f"task {self.name}: no evaluation samples (check data.eval and --subjects)")
        return samples

    def fewshot_pool(self, sample: Sample) -> list[Sample]:
        pool = self._samples("fewshot") if self.spec.data.fewshot else self._samples("eval")
        return [s for s in pool if s.subject == sample.subject] if sample.subject else pool

    def fewshot_source(self) -> str:
        return "fewshot" if self.spec.data.fewshot else "eval"

    def extract_answer(self, generation: str) -> str:
        text = generation.strip()
        if self.spec.answer_regex:
            match = re.search(self.spec.answer_regex, text)
            text = match.group(1).strip() if match else ""
        return text

    def identity(self) -> dict[str, Any]:
        files = {
            which: file_sha256(self._data_path(rel))
            for which, rel in (("eval", self.spec.data.eval), ("fewshot", self.spec.data.fewshot))
            if rel is not None and self._data_path(rel).is_file()
        }
        # What changes results: not the description, not the order metrics are listed in, not the
        # default shot count (the count used is in the settings).
        spec = self.spec.model_dump(mode="json", exclude={"description", "num_fewshot"})
        spec["metrics"] = sorted(spec["metrics"]) if spec["metrics"] else None
        spec_hash = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
        return {**super().identity(), "spec_sha256": spec_hash.hexdigest(), "data_sha256": files}

    def dataset_info(self) -> dict[str, Any]:
        return {"path": str(self.path), "eval": self.spec.data.eval, "fewshot": self.spec.data.fewshot}


def load_spec(path: Path) -> TaskSpec:
    raw = read_yaml_mapping(
        path, f"task file {path}", TaskDefinitionError, "fields (name, data, prompt, ...)"
    )
    try:
        return TaskSpec(**raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        # the field after the message: "field 'x_key': text" would read as a secret's value
        where = f" (field '{field}')" if field else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        raise TaskDefinitionError(
            f"task file {path}: {message}{where}; see docs/tasks.md for the schema"
        ) from exc
