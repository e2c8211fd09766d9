"""Built-in benchmarks over Hugging Face datasets at pinned revisions.

Each task turns rows of the real dataset schema into Samples rendered as lm-evaluation-harness's
own task configs render them (the text as the dataset has it; only where a reference template
strips or cleans, we do), with its few-shot rule, default shot count and stop sequences, so scores
compare with published ones. Winogrande and PIQA are read from the hub's parquet conversion ref,
since their original repositories hold loading scripts that current ``datasets`` releases refuse
to run.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from eval_framework.errors import TaskError, brief
from eval_framework.fingerprint import file_sha256
from eval_framework.tasks.base import Sample, Task
from eval_framework.tasks.hf_datasets import DatasetSource, load_split, local_split_file

ARC_REVISION = "210d026faf9955653af8916fad021475a3f00453"
HELLASWAG_REVISION = "218ec52e09a7e7462a5400043bb9a69a41d06b76"
MMLU_REVISION = "c30699e8356da336a370243923dbaf21066bb9fe"
GSM8K_REVISION = "cc7b047b6e5bb11b4f1af84efc572db110a51b3c"
PARQUET_REF = "refs/convert/parquet"

MMLU_SUBJECTS = [
    "abstract_algebra",
    "anatomy",
    "astronomy",
    "business_ethics",
    "clinical_knowledge",
    "college_biology",
    "college_chemistry",
    "college_computer_science",
    "college_mathematics",
    "college_medicine",
    "college_physics",
    "computer_security",
    "conceptual_physics",
    "econometrics",
    "electrical_engineering",
    "elementary_mathematics",
    "formal_logic",
    "global_facts",
    "high_school_biology",
    "high_school_chemistry",
    "high_school_computer_science",
    "high_school_european_history",
    "high_school_geography",
    "high_school_government_and_politics",
    "high_school_macroeconomics",
    "high_school_mathematics",
    "high_school_microeconomics",
    "high_school_physics",
    "high_school_psychology",
    "high_school_statistics",
    "high_school_us_history",
    "high_school_world_history",
    "human_aging",
    "human_sexuality",
    "international_law",
    "jurisprudence",
    "logical_fallacies",
    "machine_learning",
    "management",
    "marketing",
    "medical_genetics",
    "miscellaneous",
    "moral_disputes",
    "moral_scenarios",
    "nutrition",
    "philosophy",
    "prehistory",
    "professional_accounting",
    "professional_law",
    "professional_medicine",
    "professional_psychology",
    "public_relations",
    "security_studies",
    "sociology",
    "us_foreign_policy",
    "virology",
    "world_religions",
]


class HFTask(Task):
    """A task whose samples come from one or more dataset configs (one per subject, or one)."""

    dataset_path: ClassVar[str]
    revision: ClassVar[str]
    eval_split: ClassVar[str]
    fewshot_split: ClassVar[str]
    #: subject -> dataset config name; one entry with key None for single-config datasets.
    configs: ClassVar[dict[str | None, str | None]]
    #: 2: text as the dataset has it, lm-eval's few-shot rules, stop sequences and acc_norm.
    prompt_version = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rows: dict[tuple[str | None, str], list[Sample]] = {}

    @property
    def available_subjects(self) -> tuple[str, ...]:
        return tuple(s for s in self.configs if s is not None)

    def _subjects(self) -> list[str | None]:
        return list(self.selected_subjects) if self.selected_subjects else list(self.configs)

    def _load(self, subject: str | None, split: str) -> list[Sample]:
        key = (subject, split)
        if key not in self._rows:
            source = DatasetSource(self.dataset_path, self.configs[subject], self.revision)
            only = len(self.configs) == 1
            rows = load_split(source, split, self.data_dir, self.name, only_config=only)
            samples = []
            for i, row in enumerate(rows):
                try:
                    samples.append(self.row_to_sample(row, i, subject))
                except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                    where = f"{self._where(source, split, only)} row {i}"
                    raise TaskError(
                        f"{self.name}: {where} {_schema_problem(exc, row)}; fix the row, or check that "
                        "--task-data-dir holds this dataset's own files "
                        f"({self.dataset_path}'s schema, see docs/tasks.md)"
                    ) from exc
            self._rows[key] = samples
        return self._rows[key]

    def _where(self, source: DatasetSource, split: str, only_config: bool) -> str:
        if self.data_dir is not None:
            found = local_split_file(source, split, self.data_dir, only_config)
            if found is not None:
                return str(found)
        config = f" ({source.name})" if source.name else ""
        return f"split '{split}' of {source.path}{config}"

    @abstractmethod
    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample: ...

    def eval_samples(self) -> list[Sample]:
        return [s for subject in self._subjects() for s in self._load(subject, self.eval_split)]

    def _config_of(self, sample: Sample) -> str | None:
        return sample.subject if sample.subject in self.configs else None

    def fewshot_pool(self, sample: Sample) -> list[Sample]:
        return self._load(self._config_of(sample), self.fewshot_split)

    def fewshot_stream(self, sample: Sample) -> Any:
        return self._config_of(sample)

    def fewshot_source(self) -> str:
        return self.fewshot_split

    def identity(self) -> dict[str, Any]:
        identity = {
            **super().identity(),
            "dataset": self.dataset_path,
            "revision": self.revision,
            "eval_split": self.eval_split,
        }
        if self.data_dir is not None:
            identity["data_sha256"] = self._local_digests(self.data_dir)
        return identity

    def _local_digests(self, data_dir: Path) -> dict[str, str]:
        """Content digests of the local files this task reads (evaluation and few-shot splits):
        two copies of a dataset that differ in one row are two evaluations."""
        digests: dict[str, str] = {}
        for subject in self._subjects():
            source = DatasetSource(self.dataset_path, self.configs[subject], self.revision)
            for split in dict.fromkeys((self.eval_split, self.fewshot_split)):
                found = local_split_file(source, split, data_dir, only_config=len(self.configs) == 1)
                if found is not None:
                    digests[found.relative_to(data_dir).as_posix()] = file_sha256(found)
        return digests

    def dataset_info(self) -> dict[str, Any]:
        return {
            "path": self.dataset_path,
            "revision": self.revision,
            "configs": [self.configs[s] for s in self._subjects()],
            "eval_split": self.eval_split,
            "fewshot_split": self.fewshot_split,
            "local_copy": str(self.data_dir) if self.data_dir else None,
        }


def _schema_problem(exc: Exception, row: Any) -> str:
    """What is wrong with a row, in its own words: a missing field by name, else the check that
    failed ("answerKey 'Z' is not one of the labels A, B, C, D")."""
    if not isinstance(row, dict):
        return f"is {type(row).__name__}, not an object"
    if isinstance(exc, KeyError):
        return f"lacks the field {exc.args[0]!r} (row fields: {', '.join(map(str, row)) or 'none'})"
    return f"does not fit the dataset's schema: {brief(exc)}"


def _qa_prompt(question: str) -> str:
    # lm-eval: "Question: {{question}}\nAnswer:", the text not stripped
    return f"Question: {question}\nAnswer:"


class ARC(HFTask):
    name = "ARC"
    description = "AI2 Reasoning Challenge, grade-school science questions (Easy and Challenge sets)"
    dataset_path = "allenai/ai2_arc"
    revision = ARC_REVISION
    eval_split, fewshot_split = "test", "train"
    default_fewshot = 25  # the Open LLM Leaderboard's ARC setting
    configs: ClassVar[dict[str | None, str | None]] = {
        "ARC-Easy": "ARC-Easy",
        "ARC-Challenge": "ARC-Challenge",
    }

    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample:
        labels = [str(label) for label in row["choices"]["label"]]
        key = str(row["answerKey"])
        if key not in labels:
            raise ValueError(f"answerKey {key!r} is not one of the labels {', '.join(labels)}")
        return Sample(
            id=str(row["id"]),
            prompt=_qa_prompt(row["question"]),
            target=labels.index(key),
            choices=tuple(row["choices"]["text"]),
            subject=subject,
        )


class ARCEasy(ARC):
    name = "ARC-Easy"
    configs: ClassVar[dict[str | None, str | None]] = {None: "ARC-Easy"}


class ARCChallenge(ARC):
    name = "ARC-Challenge"
    configs: ClassVar[dict[str | None, str | None]] = {None: "ARC-Challenge"}


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


class HellaSwag(HFTask):
    name = "HellaSwag"
    description = "Commonsense sentence completion"
    dataset_path = "Rowan/hellaswag"
    revision = HELLASWAG_REVISION
    eval_split, fewshot_split = "validation", "train"
    default_fewshot = 10
    fewshot_same_split = True  # lm-eval's hellaswag has no test split
    configs: ClassVar[dict[str | None, str | None]] = {None: None}

    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample:
        ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
        return Sample(
            id=str(row.get("ind", index)),
            prompt=_hellaswag_clean(row["activity_label"] + ": " + ctx),
            target=int(row["label"]),
            choices=tuple(_hellaswag_clean(e) for e in row["endings"]),
        )


class MMLU(HFTask):
    name = "MMLU"
    description = "Massive Multitask Language Understanding, 57 subjects"
    dataset_path = "cais/mmlu"
    revision = MMLU_REVISION
    eval_split, fewshot_split = "test", "dev"
    configs: ClassVar[dict[str | None, str | None]] = {s: s for s in MMLU_SUBJECTS}
    metrics = ("acc",)
    default_fewshot = 5
    fewshot_sampler = "first_n"  # the standard MMLU prompt: the dev examples in dev order

    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample:
        # lm-eval: "{{question.strip()}}\nA. {{choices[0]}}..." (the question stripped, choices not)
        letters = "ABCD"
        options = "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(row["choices"]))
        return Sample(
            id=f"{subject}/{index}",
            prompt=f"{row['question'].strip()}\n{options}\nAnswer:",
            target=int(row["answer"]),
            choices=tuple(letters[: len(row["choices"])]),
            subject=subject,
        )

    def header(self, sample: Sample) -> str:
        topic = (sample.subject or "").replace("_", " ")
        return f"The following are multiple choice questions (with answers) about {topic}.\n\n"


class Winogrande(HFTask):
    name = "Winogrande"
    description = "Pronoun resolution (winogrande_xl), scored by partial evaluation"
    dataset_path = "allenai/winogrande"
    revision = PARQUET_REF
    eval_split, fewshot_split = "validation", "train"
    configs: ClassVar[dict[str | None, str | None]] = {None: "winogrande_xl"}
    metrics = ("acc",)
    default_fewshot = 5
    fewshot_same_split = True  # no test split in lm-eval's winogrande

    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample:
        sentence = row["sentence"]
        blank = sentence.index("_")
        suffix = sentence[blank + 1 :].strip()
        prompts = tuple(sentence[:blank] + row[f"option{i}"] for i in (1, 2))
        return Sample(
            id=str(index),
            prompt=prompts[0],
            target=int(row["answer"]) - 1,
            choices=(suffix, suffix),
            choice_prompts=prompts,
        )


class PIQA(HFTask):
    name = "PIQA"
    description = "Physical commonsense: choose the better solution for a goal"
    dataset_path = "ybisk/piqa"
    revision = PARQUET_REF
    eval_split, fewshot_split = "validation", "train"
    configs: ClassVar[dict[str | None, str | None]] = {None: "plain_text"}
    fewshot_same_split = True  # no test split in lm-eval's piqa

    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample:
        return Sample(
            id=str(index),
            prompt=_qa_prompt(row["goal"]),
            target=int(row["label"]),
            choices=(row["sol1"], row["sol2"]),
        )


_GSM_FINAL = re.compile(r"####\s*(.+)")
# lm-eval's gsm8k: its two answer filters, and what its exact_match ignores on both sides.
_GSM_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_GSM_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_GSM_IGNORED = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))
_NO_MATCH = "[invalid]"  # lm-eval's fallback when a filter finds nothing


def _regex_filter(pattern: re.Pattern[str], text: str, pick: int) -> str:
    """lm-eval's regex filter: the ``pick``-th match, its first non-empty group, stripped."""
    found = pattern.findall(text)
    if not found:
        return _NO_MATCH
    match = found[pick]
    if isinstance(match, tuple):
        match = next((m for m in match if m), _NO_MATCH)
    return str(match).strip()


def _exact_match_form(text: str) -> str:
    for pattern in _GSM_IGNORED:
        text = pattern.sub("", text)
    return text.lower()


class GSM8K(HFTask):
    name = "GSM8K"
    kind = "generation"
    description = "Grade-school math word problems, exact match on the answer number"
    dataset_path = "openai/gsm8k"
    revision = GSM8K_REVISION
    eval_split, fewshot_split = "test", "train"
    configs: ClassVar[dict[str | None, str | None]] = {None: "main"}
    #: lm-eval's exact_match with its strict-match filter ("#### <number>") and with its
    #: flexible-extract filter (the last number in the generation)
    metrics = ("exact_match", "exact_match_flexible")
    # lm-eval's gsm8k: these, and the model's end-of-sequence token (added by the backend)
    stop = ("Question:", "</s>", "<|im_end|>")
    max_tokens = 256
    default_fewshot = 5

    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample:
        answer = row["answer"]
        if _GSM_FINAL.search(answer) is None:
            raise ValueError(f"row {index} answer has no '#### <number>' line")
        return Sample(
            id=str(index),
            prompt=_qa_prompt(row["question"]),
            target=_exact_match_form(answer),  # what lm-eval compares with: "#### 72" gives "72"
            answer_text=answer,  # lm-eval's few-shot target: "{{answer}}"
        )

    def extract_answer(self, generation: str) -> str:
        return _regex_filter(_GSM_STRICT, generation, 0)

    def score_generation(self, generation: str, sample: Sample) -> tuple[str, dict[str, float]]:
        gold = str(sample.target)
        strict = self.extract_answer(generation)
        flexible = _regex_filter(_GSM_FLEXIBLE, generation, -1)
        return strict, {
            "exact_match": float(_exact_match_form(strict) == gold),
            "exact_match_flexible": float(_exact_match_form(flexible) == gold),
        }


BUILTIN_TASKS: dict[str, type[HFTask]] = {
    cls.name: cls for cls in (ARC, ARCEasy, ARCChallenge, HellaSwag, MMLU, Winogrande, PIQA, GSM8K)
}
