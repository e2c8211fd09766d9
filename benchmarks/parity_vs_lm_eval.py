"""Scores side by side with lm-evaluation-harness (lm-eval) on the same model and the same data.

    pip install -c constraints.txt -e '.[all,parity]'    # lm-eval is a benchmark-only extra
    python benchmarks/parity_vs_lm_eval.py [--rows 40] [--keep DIR]

Builds a tiny random Llama whose byte-level BPE tokenizer adds BOS by default (as Llama, Mistral
and Gemma tokenizers do), and data in each built-in task's hub schema with the text real data has
(stray whitespace, HellaSwag's bracketed WikiHow markup, non-ASCII choices, blank lines inside
GSM8K reasoning, Winogrande blanks that end the sentence). Every built-in task is evaluated with
both frameworks (lm-eval through its own task configs, pointed at the same files) at 0-shot and
at the task's standard shot count. Per
task it prints: prompts identical, the largest log-likelihood difference, predictions that differ,
and both frameworks' scores. Target: every prompt identical, every log-likelihood within 1e-3, the
same scores. Runs offline on the CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = (
    "planet",
    "moon",
    "sun",
    "comet",
    "river",
    "stone",
    "tree",
    "leaf",
    "water",
    "fire",
    "wind",
    "cloud",
    "seed",
    "root",
    "bird",
    "fish",
    "cat",
    "dog",
    "phone",
    "case",
    "rice",
    "towel",
    "oven",
    "pan",
    "salt",
    "sugar",
    "cup",
    "plate",
    "ladder",
    "roof",
    "wall",
    "paint",
    "brush",
    "glue",
    "paper",
)
ODD = ("café", "naïve", "温度", "CO₂", "Zürich", "ångström", "H₂O", "½ cup", "façade")
MMLU_SUBJECTS = ("astronomy", "college_biology")
LL_TOLERANCE = 1e-3


def _phrase(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _stray(rng: random.Random, text: str) -> str:
    """Whitespace as scraped data has it, on about half the rows."""
    return rng.choice(("", " ", "  ")) + text + rng.choice(("", " ", " \n")) if rng.random() < 0.5 else text


def _choice(rng: random.Random) -> str:
    text = _phrase(rng, rng.randint(1, 4))
    return f"{text} {rng.choice(ODD)}" if rng.random() < 0.4 else text


def arc_rows(rng: random.Random, n: int, prefix: str) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        labels = list("ABCD") if rng.random() < 0.8 else ["1", "2", "3", "4"]
        rows.append(
            {
                "id": f"{prefix}_{i}",
                "question": _stray(rng, f"Which {_phrase(rng, 3)} is a {_phrase(rng, 2)}?"),
                "choices": {"text": [_choice(rng) for _ in labels], "label": labels},
                "answerKey": rng.choice(labels),
            }
        )
    return rows


def hellaswag_rows(rng: random.Random, n: int, start: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        wikihow = rng.random() < 0.5
        ctx_a = (
            f"[header] How to {_phrase(rng, 3)}. [title] {_phrase(rng, 4).capitalize()}. "
            f"[step] {_phrase(rng, 3)}."
            if wikihow
            else _stray(rng, f"A {_phrase(rng, 2)} is {_phrase(rng, 3)}.")
        )
        endings = [
            f"{_phrase(rng, 3)} [substeps] {_phrase(rng, 2)}."
            if wikihow and rng.random() < 0.5
            else _choice(rng)
            for _ in range(4)
        ]
        rows.append(
            {
                "ind": start + i,
                "activity_label": _phrase(rng, 2).title(),
                "ctx_a": ctx_a,
                "ctx_b": _phrase(rng, 2),
                "ctx": "",
                "split": "val",
                "split_type": "indomain",
                "source_id": f"src~{i}",
                "endings": endings,
                "label": str(rng.randrange(4)),
            }
        )
    return rows


def mmlu_rows(rng: random.Random, n: int, subject: str) -> list[dict[str, Any]]:
    return [
        {
            "question": _stray(rng, f"What does the {_phrase(rng, 3)} do?"),
            "subject": subject,
            "choices": [_stray(rng, _choice(rng)) for _ in range(4)],
            "answer": rng.randrange(4),
        }
        for _ in range(n)
    ]


def piqa_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    return [
        {
            "goal": _stray(rng, f"How do I {_phrase(rng, 3)}?"),
            "sol1": _choice(rng),
            "sol2": _choice(rng),
            "label": rng.randrange(2),
        }
        for _ in range(n)
    ]


def winogrande_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(n):
        a, b = rng.sample(("Sarah", "Maria", "Zoë", "José", "Li", "Amir"), 2)
        rest = f" {_phrase(rng, 3)}." if rng.random() < 0.75 else ""  # some blanks end the sentence
        rows.append(
            {
                "sentence": f"{a} {_phrase(rng, 2)} {b} because _{rest}",
                "option1": a,
                "option2": b,
                "answer": rng.choice("12"),
            }
        )
    return rows


def gsm8k_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(n):
        x, y = rng.randint(2, 90), rng.randint(2, 900)
        gap = "\n\n" if rng.random() < 0.3 else "\n"  # a blank line inside the reasoning
        rows.append(
            {
                "question": _stray(rng, f"Tom has {x} {_phrase(rng, 1)}s and buys {y:,} more. How many?"),
                "answer": f"{x} + {y} = <<{x}+{y}={x + y}>>{x + y}{gap}#### {x + y:,}",
            }
        )
    return rows


@dataclass(frozen=True)
class Unit:
    """One lm-eval task config and where its rows sit in ours."""

    lm_eval_yaml: str  #: relative to lm_eval/tasks
    folder: str  #: our --task-data-dir layout: <dir>/<folder>/<split>.jsonl
    subject: str | None  #: our subject for these rows (multi-config tasks)
    splits: dict[str, list[dict[str, Any]]]


def build_data(rng: random.Random, rows: int) -> dict[str, tuple[str, list[Unit]]]:
    """Our task name -> (its --task-data-dir, the lm-eval units it covers)."""
    pool = max(rows, 40)
    arc = {
        name: {
            "train": arc_rows(rng, pool, f"{name}-train"),
            "validation": arc_rows(rng, 5, f"{name}-val"),
            "test": arc_rows(rng, rows, f"{name}-test"),
        }
        for name in ("ARC-Easy", "ARC-Challenge")
    }
    hellaswag = {"train": hellaswag_rows(rng, pool, 10_000), "validation": hellaswag_rows(rng, rows, 0)}
    mmlu = {s: {"dev": mmlu_rows(rng, 5, s), "test": mmlu_rows(rng, rows // 2, s)} for s in MMLU_SUBJECTS}
    piqa = {"train": piqa_rows(rng, pool), "validation": piqa_rows(rng, rows)}
    wino = {"train": winogrande_rows(rng, pool), "validation": winogrande_rows(rng, rows)}
    gsm = {"train": gsm8k_rows(rng, pool), "test": gsm8k_rows(rng, max(8, rows // 4))}
    return {
        "ARC": (
            "arc",
            [
                Unit("arc/arc_easy.yaml", "ARC-Easy", "ARC-Easy", arc["ARC-Easy"]),
                Unit("arc/arc_challenge.yaml", "ARC-Challenge", "ARC-Challenge", arc["ARC-Challenge"]),
            ],
        ),
        "ARC-Easy": ("arc", [Unit("arc/arc_easy.yaml", "ARC-Easy", None, arc["ARC-Easy"])]),
        "ARC-Challenge": (
            "arc",
            [Unit("arc/arc_challenge.yaml", "ARC-Challenge", None, arc["ARC-Challenge"])],
        ),
        "HellaSwag": ("hellaswag", [Unit("hellaswag/hellaswag.yaml", "", None, hellaswag)]),
        "MMLU": ("mmlu", [Unit(f"mmlu/default/mmlu_{s}.yaml", s, s, mmlu[s]) for s in MMLU_SUBJECTS]),
        "PIQA": ("piqa", [Unit("piqa/piqa.yaml", "plain_text", None, piqa)]),
        "Winogrande": ("winogrande", [Unit("winogrande/default.yaml", "winogrande_xl", None, wino)]),
        "GSM8K": ("gsm8k", [Unit("gsm8k/gsm8k.yaml", "main", None, gsm)]),
    }


def write_data(root: Path, tasks: dict[str, tuple[str, list[Unit]]]) -> None:
    for data_dir, units in tasks.values():
        for unit in units:
            folder = root / data_dir / unit.folder
            folder.mkdir(parents=True, exist_ok=True)
            for split, split_rows in unit.splits.items():
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in split_rows)
                (folder / f"{split}.jsonl").write_text(text, encoding="utf-8")


def corpus(tasks: dict[str, tuple[str, list[Unit]]]) -> list[str]:
    """The data's own text, so the tokenizer's merges fit it as a real tokenizer's fit real text."""
    return [
        json.dumps(r, ensure_ascii=False)
        for _, units in tasks.values()
        for u in units
        for rs in u.splits.values()
        for r in rs
    ]


# lm-eval ----------------------------------------------------------------------------------------
def lm_eval_config(unit: Unit, data_root: Path) -> dict[str, Any]:
    import lm_eval
    from lm_eval.tasks._yaml_loader import load_yaml

    path = Path(lm_eval.__file__).parent / "tasks" / unit.lm_eval_yaml
    config = dict(load_yaml(path, resolve_func=True, recursive=True))
    folder = data_root / unit.folder
    config.update(
        dataset_path="json",
        dataset_name=None,
        dataset_kwargs={"data_files": {split: str(folder / f"{split}.jsonl") for split in unit.splits}},
    )
    config.pop("tag", None)
    config.pop("group", None)
    return config


def run_lm_eval(
    model_dir: Path, units: list[Unit], data_root: Path, k: int, batch_size: int
) -> list[dict[str, Any]]:
    """Per unit, lm-eval's logged samples in doc order."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    model = HFLM(pretrained=str(model_dir), batch_size=batch_size, device="cpu", dtype="float32")
    out = []
    for unit in units:
        config = lm_eval_config(unit, data_root)
        results = lm_eval.simple_evaluate(
            model=model, tasks=[config], num_fewshot=k, log_samples=True, verbosity="ERROR"
        )
        (samples,) = results["samples"].values()
        out.append(_per_doc(samples))
    return out


def _per_doc(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per document. A generation task logs each document once per answer filter:
    strict-match's exact_match is our exact_match, flexible-extract's our exact_match_flexible."""
    docs: dict[int, dict[str, Any]] = {}
    for sample in samples:
        doc = docs.setdefault(sample["doc_id"], dict(sample))
        if "exact_match" in sample:
            name = "exact_match" if sample["filter"] == "strict-match" else "exact_match_flexible"
            doc[name] = sample["exact_match"]
            if sample["filter"] == "strict-match":
                doc["strict_resps"] = sample["filtered_resps"]
    return [docs[i] for i in sorted(docs)]


# ours -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """What every evaluation of the run shares: the model, the batch size, where bundles go."""

    model_dir: Path
    batch_size: int
    out: Path


@dataclass(frozen=True)
class Ours:
    """One evaluation by eval_framework: its plan, its rows in index order, its overall values."""

    plan: Any
    rows: list[dict[str, Any]]
    overall: dict[str, Any]


def run_ours(setup: Setup, task: str, data_dir: Path, subjects: tuple[str, ...], k: int) -> Ours:
    from eval_framework.config import EvalConfig
    from eval_framework.eval_plan import make_plan
    from eval_framework.runner import evaluate

    config = EvalConfig(
        llm_name="hf",
        llm_args={"checkpoint": str(setup.model_dir), "dtype": "float32", "device": "cpu"},
        task_name=task,
        task_data_dir=data_dir,
        subjects=subjects,
        num_fewshot=k,
        batch_size=setup.batch_size,
        output_dir=setup.out,
    )
    plan = make_plan(config)
    outcome = evaluate(config)
    rows = [
        json.loads(line)
        for line in (outcome.bundle_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    rows.sort(key=lambda r: r["index"])
    overall = {name: stats.value for name, stats in outcome.results.metrics.overall.items()}
    return Ours(plan, rows, overall)


@dataclass
class Comparison:
    task: str
    shots: int
    docs: int = 0
    prompts_same: int = 0
    max_ll_diff: float = 0.0
    preds_differ: int = 0
    ours: dict[str, float] | None = None
    theirs: dict[str, float] | None = None


def compare(
    task: str, k: int, evaluated: Ours, theirs_units: list[list[dict[str, Any]]], units: list[Unit]
) -> Comparison:
    plan, rows = evaluated.plan, evaluated.rows
    cmp = Comparison(task, k)
    by_subject: dict[str | None, list[tuple[Any, dict[str, Any]]]] = {}
    for prepared, row in zip(plan.prepared, rows, strict=True):
        by_subject.setdefault(prepared.sample.subject, []).append((prepared, row))
    generation = plan.task.kind == "generation"
    sums = dict.fromkeys(plan.task.metrics, 0.0)
    for unit, theirs in zip(units, theirs_units, strict=True):
        ours = by_subject[unit.subject]
        assert len(ours) == len(theirs), (task, unit.lm_eval_yaml, len(ours), len(theirs))
        for (prepared, row), their in zip(ours, theirs, strict=True):
            cmp.docs += 1
            if generation:
                same = [a[0] for a in their["arguments"]] == prepared.contexts(plan.task)
                cmp.preds_differ += row["generation"] != their["resps"][0][0]
            else:
                pairs = list(
                    zip(prepared.contexts(plan.task), prepared.continuations(plan.task), strict=True)
                )
                same = [tuple(a) for a in their["arguments"]] == pairs
                lls = [r[0][0] for r in their["resps"]]
                diffs = [abs(a - b) for a, b in zip(row["logprobs"], lls, strict=True)]
                cmp.max_ll_diff = max(cmp.max_ll_diff, *diffs)
                cmp.preds_differ += row["prediction"] != max(range(len(lls)), key=lambda i: (lls[i], -i))
            cmp.prompts_same += same
            for metric in sums:
                sums[metric] += float(their[metric])
    cmp.theirs = {m: v / cmp.docs for m, v in sums.items()}
    cmp.ours = {m: evaluated.overall[m] for m in plan.task.metrics}
    return cmp


def gsm8k_scoring(units: list[Unit], data_dir: Path) -> tuple[int, int, int]:
    """Both frameworks' GSM8K scores on answer texts whose scores are known to vary (a random model
    never writes the right number): the reference answers, and variants a real model writes.
    lm-eval's side uses the filters and exact_match settings of its own loaded config."""
    import re

    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    from eval_framework.tasks import get_task

    config = lm_eval_config(units[0], data_dir)
    (metric,) = config["metric_list"]
    settings = {k: metric[k] for k in ("regexes_to_ignore", "ignore_case", "ignore_punctuation")}
    filters = {
        f["name"]: RegexFilter(**{k: v for k, v in f["filter"][0].items() if k != "function"})
        for f in config["filter_list"]
    }
    task = get_task("GSM8K", data_dir=data_dir)
    total = strict_same = flexible_same = 0
    for sample in task.eval_samples():
        answer = str(sample.answer_text)
        n = int(str(sample.target))
        reasoning = re.sub(r"#### .*", "", answer).strip()
        texts = [
            answer,
            f"{reasoning}\n#### {n:,}\n\nQuestion: what next?",
            f"So the answer is ${n:,}.",
            f"#### {n}.00",
            f"I think {n + 1}, no, {n}",
            f"#### {n + 1}\nor maybe {n}",
            "no idea",
        ]
        for text in texts:
            _, ours = task.score_generation(text, sample)
            for name, ours_name in (
                ("strict-match", "exact_match"),
                ("flexible-extract", "exact_match_flexible"),
            ):
                (extracted,) = filters[name].apply([[text]], [{}])[0]
                theirs = exact_match_hf_evaluate([extracted], [answer], **settings)["exact_match"]
                same = float(theirs) == ours[ours_name]
                strict_same += same and name == "strict-match"
                flexible_same += same and name == "flexible-extract"
            total += 1
    return total, strict_same, flexible_same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40, help="evaluation rows per task (per config)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="keep the model, data and bundles here")
    args = parser.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    logging.disable(logging.WARNING)
    from eval_framework.tasks import get_task
    from tests.fixtures.bos_llama import build_bos_llama

    root = args.keep or Path(tempfile.mkdtemp(prefix="parity-"))
    tasks = build_data(random.Random(20261203), args.rows)
    write_data(root / "data", tasks)
    model_dir = build_bos_llama(root / "model", seed=0, corpus=corpus(tasks))
    setup = Setup(model_dir, args.batch_size, root / "ours")
    table = []
    for name, (data_dir, units) in tasks.items():
        standard = get_task(name).default_fewshot
        for k in sorted({0, standard}):
            subjects = tuple(u.subject for u in units if u.subject) if name == "MMLU" else ()
            ours = run_ours(setup, name, root / "data" / data_dir, subjects, k)
            theirs = run_lm_eval(model_dir, units, root / "data" / data_dir, k, args.batch_size)
            table.append(compare(name, k, ours, theirs, units))
            print(f"  {name} {k}-shot done", file=sys.stderr, flush=True)
    gsm_dir, gsm_units = tasks["GSM8K"]
    scoring = gsm8k_scoring(gsm_units, root / "data" / gsm_dir)
    print_table(table, scoring)


def print_table(table: list[Comparison], gsm8k: tuple[int, int, int]) -> None:
    print("| task | shots | docs | prompts identical | max abs diff log-lik | predictions differing ", end="")
    print("| ours | lm-eval |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    ok = True
    for c in table:
        scores = lambda d: ", ".join(f"{m} {v:.4f}" for m, v in (d or {}).items())  # noqa: E731
        same_scores = all(abs((c.ours or {})[m] - (c.theirs or {})[m]) < 1e-9 for m in c.ours or {})
        ok = (
            ok
            and c.prompts_same == c.docs
            and c.max_ll_diff <= LL_TOLERANCE
            and same_scores
            and not c.preds_differ
        )
        print(
            f"| {c.task} | {c.shots} | {c.docs} | {c.prompts_same}/{c.docs} | {c.max_ll_diff:.2e} "
            f"| {c.preds_differ} | {scores(c.ours)} | {scores(c.theirs)} |"
        )
    total, strict, flexible = gsm8k
    print(f"\nGSM8K scoring of {total} answer texts: strict-match agrees on {strict}, flexible on {flexible}")
    ok = ok and strict == flexible == total
    print(
        "target met: every prompt identical, log-likelihoods within 1e-3, same scores"
        if ok
        else "TARGET MISSED"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
