"""Built-in benchmarks over Hugging Face datasets at pinned revisions.

Each task turns rows of the real dataset schema into Samples. Winogrande and PIQA are read from
the hub's parquet conversion ref, since their original repositories hold loading scripts that
current ``datasets`` releases refuse to run.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from eval_framework.errors import TaskError
from eval_framework.fingerprint import file_sha256
from eval_framework.tasks.base import Sample, Task, normalize_number
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
            rows = load_split(source, split, self.data_dir, self.name, only_config=len(self.configs) == 1)
            try:
                self._rows[key] = [self.row_to_sample(row, i, subject) for i, row in enumerate(rows)]
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise TaskError(
                    f"{self.name}: rows of split '{split}' do not have the expected schema ({exc!r}); "
                    "check that --task-data-dir holds this dataset's own files"
                ) from exc
        return self._rows[key]

    @abstractmethod
    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample: ...

    def eval_samples(self) -> list[Sample]:
        return [s for subject in self._subjects() for s in self._load(subject, self.eval_split)]

    def fewshot_pool(self, sample: Sample) -> list[Sample]:
        subject = sample.subject if sample.subject in self.configs else None
        return self._load(subject, self.fewshot_split)

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


def _qa_prompt(question: str) -> str:
    return f"Question: {question.strip()}\nAnswer:"


class ARC(HFTask):
    name = "ARC"
    description = "AI2 Reasoning Challenge, grade-school science questions (Easy and Challenge sets)"
    dataset_path = "allenai/ai2_arc"
    revision = ARC_REVISION
    eval_split, fewshot_split = "test", "train"
    configs: ClassVar[dict[str | None, str | None]] = {
        "ARC-Easy": "ARC-Easy",
        "ARC-Challenge": "ARC-Challenge",
    }

    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample:
        labels = [str(label) for label in row["choices"]["label"]]
        return Sample(
            id=str(row["id"]),
            prompt=_qa_prompt(row["question"]),
            target=labels.index(str(row["answerKey"])),
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

    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample:
        letters = "ABCD"
        options = "\n".join(f"{letters[i]}. {c.strip()}" for i, c in enumerate(row["choices"]))
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

    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample:
        return Sample(
            id=str(index),
            prompt=_qa_prompt(row["goal"]),
            target=int(row["label"]),
            choices=(row["sol1"], row["sol2"]),
        )


_GSM_FINAL = re.compile(r"####\s*(.+)")
_GSM_SAYS = re.compile(r"answer is\s*:?\s*\$?(-?[\d,]*\.?\d+)", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class GSM8K(HFTask):
    name = "GSM8K"
    kind = "generation"
    description = "Grade-school math word problems, exact match on the final number"
    dataset_path = "openai/gsm8k"
    revision = GSM8K_REVISION
    eval_split, fewshot_split = "test", "train"
    configs: ClassVar[dict[str | None, str | None]] = {None: "main"}
    metrics = ("exact_match",)
    stop = ("Question:", "\n\n")
    max_tokens = 256

    def row_to_sample(self, row: dict[str, Any], index: int, subject: str | None) -> Sample:
        answer = row["answer"]
        final = _GSM_FINAL.search(answer)
        if final is None:
            raise ValueError(f"row {index} answer has no '#### <number>' line")
        return Sample(
            id=str(index),
            prompt=_qa_prompt(row["question"]),
            target=normalize_number(final.group(1)),
            answer_text=answer.strip(),
        )

    def extract_answer(self, generation: str) -> str:
        for pattern in (_GSM_FINAL, _GSM_SAYS):
            match = pattern.search(generation)
            if match:
                return normalize_number(match.group(1))
        numbers = _ANY_NUMBER.findall(generation)
        return normalize_number(numbers[-1]) if numbers else ""

    def matches(self, prediction: str, target: str) -> bool:
        return prediction != "" and prediction == normalize_number(str(target))


BUILTIN_TASKS: dict[str, type[HFTask]] = {
    cls.name: cls for cls in (ARC, ARCEasy, ARCChallenge, HellaSwag, MMLU, Winogrande, PIQA, GSM8K)
}
