"""Speed against lm-evaluation-harness (lm-eval) on the same model, data and settings.

    pip install -c constraints.txt -e '.[all,parity]'    # lm-eval is a benchmark-only extra
    python benchmarks/scoring_vs_lm_eval.py [--rows 8] [--repeat 3] [--batch-sizes 8 32]
        [--workloads MC-multi MC-single MC-word GEN] [--keep DIR] [--device cpu|cuda] [--model-size 8m|1b]

Builds, offline, a random Llama (8M parameters on the CPU, 1B in bfloat16 on CUDA) whose BPE
tokenizer (a few thousand tokens) is trained on the generated data, and four workloads in their
hub schemas, with text drawn from a Zipf-distributed lexicon so that prompts tokenize to about
real lengths. Both frameworks read the same files; lm-eval through its own task configs with only
the dataset pointed at them. Per workload and batch size, each framework is timed two ways,
alternating ours / lm-eval, ``--repeat`` times (the minimum counts):

- command: the whole CLI process (imports, model load, data, scoring, output files);
- scoring: in one process with both models loaded, only the scoring: our ``scored_chunks`` over the
  evaluation's prepared samples, and the time lm-eval spends inside ``HFLM.loglikelihood`` /
  ``generate_until`` during ``simple_evaluate`` (its own requests, built by its own code).

It prints samples/s and the ratio (ours / lm-eval), the largest log-likelihood difference per
document and choice between the two commands' sample logs, and both accuracies; then the targets.
Exits 1 when one is missed. The defaults take about 13 minutes on 2 busy CPU cores, most of it
process start-up and GSM8K's 256 generated tokens per document.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.parity_vs_lm_eval import LL_TOLERANCE, Unit, _per_doc, corpus, write_data  # noqa: E402

MMLU_SUBJECT = "astronomy"
MAX_NEW_TOKENS = 256
#: Model shapes: (layers, hidden, intermediate, heads, kv heads); the vocabulary is trained to 4096.
SIZES = {"8m": (8, 256, 704, 4, 2), "1b": (22, 2048, 5632, 32, 4)}
VOCAB = 4096


@dataclass(frozen=True)
class Workload:
    """One row of the benchmark: our task, lm-eval's task config, the data both read."""

    name: str
    task: str  #: our built-in task
    lm_eval_task: str  #: the name of our copy of lm-eval's config (its dataset pointed at our files)
    data_dir: str  #: our --task-data-dir, relative to the data root
    unit: Unit  #: lm-eval's config file and the rows of every split
    shots: int
    target: float  #: ratio ours / lm-eval to reach, both measures
    metric: str  #: our metric, lm-eval's of the same name

    @property
    def generation(self) -> bool:
        return self.metric == "exact_match"


# data -------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FUNCTION_WORDS = _words(
    "the of and a to in is was that for on with as by it from at be this which are his her they an or "
    "has had not but what all were when we there can their one so if into more some them about than "
    "then its also how many each other after first"
)
ONSETS = _words("b c d f g h j k l m n p r s t v w z br cl dr st tr sh ch th pl gr sp fl")
NUCLEI = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "ee")
CODAS = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "x"]
NAMES = ("Tom", "Maria", "Zoë", "José", "Li", "Amir", "Sarah", "Kwame", "Ana", "Ravi")


class Text:
    """Words with roughly English statistics: half function words, the rest from a Zipf-weighted
    lexicon of made-up words, so a trained BPE splits them as a real one splits real text (frequent
    words whole, rare ones in pieces)."""

    def __init__(self, rng: random.Random, size: int = 4000) -> None:
        self.rng = rng
        lexicon: set[str] = set()
        while len(lexicon) < size:
            syllables = rng.choice((1, 2, 2, 2, 3, 3, 4))
            lexicon.add(
                "".join(rng.choice(ONSETS) + rng.choice(NUCLEI) + rng.choice(CODAS) for _ in range(syllables))
            )
        self.lexicon = sorted(lexicon)
        rng.shuffle(self.lexicon)
        self._content = _cumulative([1 / (rank + 10) for rank in range(size)])
        self._function = _cumulative([1 / (rank + 2) for rank in range(len(FUNCTION_WORDS))])

    def words(self, n: int) -> str:
        out = []
        for _ in range(n):
            if self.rng.random() < 0.45:
                out.append(self.rng.choices(FUNCTION_WORDS, cum_weights=self._function)[0])
            else:
                out.append(self.rng.choices(self.lexicon, cum_weights=self._content)[0])
        return " ".join(out)

    def sentence(self, lo: int, hi: int, end: str = ".") -> str:
        text = self.words(self.rng.randint(lo, hi))
        if self.rng.random() < 0.3:  # a clause
            cut = text.split(" ")
            at = self.rng.randrange(1, len(cut)) if len(cut) > 1 else 1
            text = " ".join(cut[:at]) + ", " + " ".join(cut[at:])
        return text[0].upper() + text[1:].rstrip(", ") + end

    def sentences(self, n: int, lo: int, hi: int) -> str:
        return " ".join(self.sentence(lo, hi) for _ in range(n))


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def hellaswag_rows(text: Text, n: int, start: int) -> list[dict[str, Any]]:
    """ActivityNet/WikiHow-like: a context of one to three sentences, four endings of 8-30 words."""
    rng = text.rng
    return [
        {
            "ind": start + i,
            "activity_label": text.words(2).title(),
            "ctx_a": text.sentences(rng.randint(1, 3), 8, 18),
            "ctx_b": text.words(rng.randint(2, 6)),
            "ctx": "",
            "split": "val",
            "split_type": "indomain",
            "source_id": f"src~{start + i}",
            "endings": [text.sentence(8, 30) for _ in range(4)],
            "label": str(rng.randrange(4)),
        }
        for i in range(n)
    ]


def mmlu_rows(text: Text, n: int) -> list[dict[str, Any]]:
    """A question of 10-60 words, four choices of 1-12 words; answered by a letter."""
    rng = text.rng
    return [
        {
            "question": text.sentences(rng.randint(1, 3), 6, 20)[:-1] + "?",
            "subject": MMLU_SUBJECT,
            "choices": [text.sentence(1, 12, "") for _ in range(4)],
            "answer": rng.randrange(4),
        }
        for _ in range(n)
    ]


def arc_rows(text: Text, n: int, prefix: str) -> list[dict[str, Any]]:
    """A question of 10-35 words, four short answers (1-5 words)."""
    rng = text.rng
    return [
        {
            "id": f"{prefix}_{i}",
            "question": text.sentences(rng.randint(1, 2), 8, 18)[:-1] + "?",
            "choices": {"text": [text.words(rng.randint(1, 5)) for _ in "ABCD"], "label": list("ABCD")},
            "answerKey": rng.choice("ABCD"),
        }
        for i in range(n)
    ]


def gsm8k_rows(text: Text, n: int) -> list[dict[str, Any]]:
    """A word problem of about 50 words and a worked answer of three calculations, ``#### n``."""
    rng = text.rng
    rows = []
    for _ in range(n):
        who, thing = rng.choice(NAMES), text.words(1)
        x, y, z = rng.randint(2, 90), rng.randint(2, 400), rng.randint(2, 9)
        s, total = x + y, (x + y) * z
        rows.append(
            {
                "question": f"{who} has {x} {thing}s. {text.sentence(8, 16)} {who} buys {y} more. "
                f"{text.sentence(8, 16)} Each {thing} holds {z} {text.words(1)}s. "
                f"How many {text.words(1)}s are there in all?",
                "answer": f"{text.sentence(6, 14)} {who} has {x} + {y} = <<{x}+{y}={s}>>{s} {thing}s.\n"
                f"{text.sentence(6, 14)} So there are {s} * {z} = <<{s}*{z}={total}>>{total}.\n"
                f"{text.sentence(4, 10)}\n#### {total}",
            }
        )
    return rows


def build_workloads(rows: int, seed: int = 20261210) -> list[Workload]:
    """The four workloads with ``rows`` evaluated documents each (the same text for the same ``rows``)."""
    text = Text(random.Random(seed))
    pool = max(rows, 50)  # few-shot pool: more than ARC's 25 shots
    hellaswag = {"train": hellaswag_rows(text, pool, 10_000), "validation": hellaswag_rows(text, rows, 0)}
    mmlu = {"dev": mmlu_rows(text, 5), "test": mmlu_rows(text, rows)}
    arc = {"train": arc_rows(text, pool, "train"), "validation": arc_rows(text, 5, "val")}
    arc["test"] = arc_rows(text, rows, "test")
    gsm8k = {"train": gsm8k_rows(text, pool), "test": gsm8k_rows(text, rows)}
    mmlu_yaml = f"mmlu/default/mmlu_{MMLU_SUBJECT}.yaml"
    return [
        Workload(
            "MC-multi", "HellaSwag", "hellaswag_local", "hellaswag",
            Unit("hellaswag/hellaswag.yaml", "", None, hellaswag), 10, 2.0, "acc",
        ),
        Workload(
            "MC-single", "MMLU", f"mmlu_{MMLU_SUBJECT}_local", "mmlu",
            Unit(mmlu_yaml, MMLU_SUBJECT, MMLU_SUBJECT, mmlu), 5, 1.3, "acc",
        ),
        Workload(
            "MC-word", "ARC-Challenge", "arc_challenge_local", "arc",
            Unit("arc/arc_challenge.yaml", "ARC-Challenge", None, arc), 25, 1.3, "acc",
        ),
        Workload(
            "GEN", "GSM8K", "gsm8k_local", "gsm8k",
            Unit("gsm8k/gsm8k.yaml", "main", None, gsm8k), 8, 1.0, "exact_match",
        ),
    ]  # fmt: skip


def write_lm_eval_configs(out: Path, data_root: Path, workloads: list[Workload]) -> Path:
    """Per workload a task file that includes lm-eval's own config and points only its dataset at
    our files (as ``parity_vs_lm_eval.lm_eval_config`` does in memory): the CLI needs a file."""
    import lm_eval
    import yaml

    tasks = Path(lm_eval.__file__).parent / "tasks"
    out.mkdir(parents=True, exist_ok=True)
    for w in workloads:
        folder = data_root / w.data_dir / w.unit.folder
        config: dict[str, Any] = {
            "include": str(tasks / w.unit.lm_eval_yaml),
            "task": w.lm_eval_task,
            "tag": [],  # not listed under the original's tags (mmlu_stem_tasks, ...)
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {s: str(folder / f"{s}.jsonl") for s in w.unit.splits}},
        }
        (out / f"{w.lm_eval_task}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return out


# settings ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """What both frameworks get: the same model files, dtype, device, data and task files."""

    root: Path
    model_dir: Path
    data_root: Path
    lm_eval_tasks: Path
    device: str
    dtype: str

    def ours_args(self, w: Workload, batch_size: int, out: Path) -> list[str]:
        args = [
            "--llm-name",
            "hf",
            "--llm-args",
            f"checkpoint={self.model_dir}",
            f"dtype={self.dtype}",
            f"device={self.device}",
            "--task-name",
            w.task,
            "--num-fewshot",
            str(w.shots),
            "--batch-size",
            str(batch_size),
            "--task-data-dir",
            str(self.data_root / w.data_dir),
            "--output-dir",
            str(out),
        ]
        if w.unit.subject:
            args += ["--subjects", w.unit.subject]
        if w.generation:
            args += ["--max-tokens", str(MAX_NEW_TOKENS)]
        return [sys.executable, "-m", "eval_framework", *args]

    def lm_eval_args(self, w: Workload, batch_size: int, out: Path) -> list[str]:
        args = [
            "--model",
            "hf",
            "--model_args",
            f"pretrained={self.model_dir},dtype={self.dtype}",
            "--device",
            self.device,
            "--tasks",
            w.lm_eval_task,
            "--include_path",
            str(self.lm_eval_tasks),
            "--num_fewshot",
            str(w.shots),
            "--batch_size",
            str(batch_size),
            "--output_path",
            str(out),
            "--log_samples",
        ]
        if w.generation:
            args += ["--gen_kwargs", f"max_gen_toks={MAX_NEW_TOKENS}"]
        return [sys.executable, "-m", "lm_eval", "run", *args]


@dataclass
class Measure:
    """Seconds per repeat, ours and lm-eval's."""

    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)

    def ratio(self) -> float:
        """Ours / lm-eval in samples per second, each at its fastest repeat."""
        return min(self.theirs) / min(self.ours)


@dataclass
class Agreement:
    """The two commands' sample logs side by side."""

    docs: int
    max_ll_diff: float | None  #: None for generation
    generations_differ: int
    ours: float
    theirs: float


# whole commands ---------------------------------------------------------------------------------
def run_command(cmd: list[str], cwd: Path) -> float:
    """Wall seconds of ``cmd``; its output goes to ``cwd/output.log``. A failure stops the benchmark
    with the command's own error (never worked around)."""
    cwd.mkdir(parents=True)
    with (cwd / "output.log").open("w", encoding="utf-8") as log:
        start = time.perf_counter()
        # cwd: our CLI reads ./.env, lm-eval may write next to it; neither should see the repo's.
        done = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, check=False)
        elapsed = time.perf_counter() - start
    if done.returncode:
        tail = (cwd / "output.log").read_text(encoding="utf-8", errors="replace")[-3000:]
        sys.exit(f"command failed (exit {done.returncode}): {' '.join(cmd)}\n{tail}")
    return elapsed


def commands(setup: Setup, w: Workload, batch_size: int, repeat: int) -> tuple[Measure, Agreement]:
    measure = Measure()
    for r in range(repeat):  # alternating, so a slow spell of the shared machine hits both
        ours_dir = setup.root / "runs" / f"{w.name}-b{batch_size}-{r}-ours"
        measure.ours.append(run_command(setup.ours_args(w, batch_size, ours_dir / "out"), ours_dir))
        theirs_dir = setup.root / "runs" / f"{w.name}-b{batch_size}-{r}-lm_eval"
        measure.theirs.append(run_command(setup.lm_eval_args(w, batch_size, theirs_dir / "out"), theirs_dir))
        say(
            f"{w.name} b{batch_size} command {r + 1}/{repeat}: ours {measure.ours[-1]:.1f}s, "
            f"lm-eval {measure.theirs[-1]:.1f}s"
        )
    return measure, agreement(w, ours_dir / "out", theirs_dir / "out")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def agreement(w: Workload, ours_out: Path, theirs_out: Path) -> Agreement:
    """Per document (our row ``index`` is lm-eval's ``doc_id``: both in dataset order) and choice."""
    (ours_file,) = ours_out.glob("*/samples.jsonl")
    (theirs_file,) = theirs_out.glob(f"**/samples_{w.lm_eval_task}_*.jsonl")
    ours = sorted(_jsonl(ours_file), key=lambda row: row["index"])
    theirs = _per_doc(_jsonl(theirs_file))
    if [r["index"] for r in ours] != [d["doc_id"] for d in theirs]:
        sys.exit(f"{w.name}: the two frameworks evaluated different documents")
    max_diff: float | None = None if w.generation else 0.0
    differ = 0
    for row, doc in zip(ours, theirs, strict=True):
        if w.generation:
            differ += row["generation"] != doc["resps"][0][0]
        else:
            lls = [float(resp[0][0]) for resp in doc["resps"]]
            max_diff = max(max_diff or 0.0, *(abs(a - b) for a, b in zip(row["logprobs"], lls, strict=True)))
    n = len(ours)
    return Agreement(
        n,
        max_diff,
        differ,
        sum(float(r["scores"][w.metric]) for r in ours) / n,
        sum(float(d[w.metric]) for d in theirs) / n,
    )


# scoring alone ----------------------------------------------------------------------------------
class Stopwatch:
    """Seconds spent inside the wrapped methods."""

    def __init__(self) -> None:
        self.total = 0.0

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - start

        return timed


def scoring(
    setup: Setup, workloads: list[Workload], batch_sizes: list[int], repeat: int
) -> dict[tuple[str, int], Measure]:
    """(workload name, batch size) -> the scoring phase's seconds, both models loaded in this process."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from eval_framework.models.huggingface import HuggingFaceLLM
    from eval_framework.scoring import scored_chunks

    plans = {w.name: plan_for(setup, w) for w in workloads}  # untimed: data, prompts, few-shot examples
    task_manager = TaskManager(include_path=str(setup.lm_eval_tasks))
    out: dict[tuple[str, int], Measure] = {}
    for batch_size in batch_sizes:
        ours_model = HuggingFaceLLM(
            str(setup.model_dir), dtype=setup.dtype, device=setup.device, batch_size=batch_size
        )
        lm = HFLM(
            pretrained=str(setup.model_dir), batch_size=batch_size, device=setup.device, dtype=setup.dtype
        )
        warm_up(ours_model.model, lm.model, device=setup.device)
        watch = Stopwatch()
        # simple_evaluate calls getattr(lm, request_type)(requests): the instance's attribute wins.
        for method in ("loglikelihood", "generate_until"):
            setattr(lm, method, watch.wrap(getattr(lm, method)))
        for w in workloads:
            plan, measure = plans[w.name], out.setdefault((w.name, batch_size), Measure())
            pending = list(enumerate(plan.prepared))
            max_tokens = plan.config.max_tokens or plan.task.max_tokens  # as the runner does
            for r in range(repeat):
                start = time.perf_counter()
                for _ in scored_chunks(plan.task, ours_model, pending, batch_size, max_tokens):
                    pass
                measure.ours.append(time.perf_counter() - start)
                watch.total = 0.0
                lm_eval.simple_evaluate(
                    model=lm,
                    tasks=[w.lm_eval_task],
                    task_manager=task_manager,
                    num_fewshot=w.shots,
                    gen_kwargs={"max_gen_toks": MAX_NEW_TOKENS} if w.generation else None,
                    log_samples=False,
                    bootstrap_iters=0,
                )
                measure.theirs.append(watch.total)
                say(
                    f"{w.name} b{batch_size} scoring {r + 1}/{repeat}: ours {measure.ours[-1]:.1f}s, "
                    f"lm-eval {measure.theirs[-1]:.1f}s"
                )
        del ours_model, lm
    return out


def warm_up(*models: Any, device: str) -> None:
    """One small forward pass per model, untimed: torch's first-call costs are paid by neither side."""
    import torch

    with torch.inference_mode():
        for model in models:
            model(input_ids=torch.ones((2, 64), dtype=torch.long, device=device))


def plan_for(setup: Setup, w: Workload) -> Any:
    """Our evaluation's plan (task, prepared samples), as the CLI makes it from the same settings."""
    from eval_framework.config import EvalConfig
    from eval_framework.eval_plan import make_plan

    return make_plan(
        EvalConfig(
            llm_name="hf",
            llm_args={"checkpoint": str(setup.model_dir), "dtype": setup.dtype, "device": setup.device},
            task_name=w.task,
            task_data_dir=setup.data_root / w.data_dir,
            subjects=(w.unit.subject,) if w.unit.subject else (),
            num_fewshot=w.shots,
            max_tokens=MAX_NEW_TOKENS if w.generation else None,
            output_dir=setup.root / "unused",
        )
    )


def prompt_tokens(setup: Setup, w: Workload) -> float:
    """Mean tokens of a workload's prompts (BOS included), to show that they are realistic."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(setup.model_dir)
    plan = plan_for(setup, w)
    lengths = [len(tokenizer(p.contexts(plan.task)[0])["input_ids"]) for p in plan.prepared]
    return sum(lengths) / len(lengths)


def parameters(model_dir: Path) -> int:
    """Parameters in the checkpoint's weight files, read from their headers."""
    from safetensors import safe_open

    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(str(path), "pt") as weights:
            names = weights.keys()  # the handle itself is not iterable
            total += sum(math.prod(weights.get_slice(name).get_shape()) for name in names)
    return total


# report -----------------------------------------------------------------------------------------
def say(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Row:
    workload: Workload
    batch_size: int
    command: Measure
    scoring: Measure
    agreement: Agreement


def report(rows: list[Row], tokens: dict[str, float]) -> bool:
    """Print the per-workload table and the targets; True when every target is met."""
    print(
        "| workload | prompt tokens | batch | docs | command ours / lm-eval (samples/s) | ratio "
        "| scoring ours / lm-eval (samples/s) | ratio | max abs diff log-lik | ours | lm-eval |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        w, a, n = row.workload, row.agreement, row.agreement.docs
        cmd, sc = row.command, row.scoring
        diff = (
            f"{a.generations_differ} generations differ" if a.max_ll_diff is None else f"{a.max_ll_diff:.2e}"
        )
        print(
            f"| {w.name} | {tokens[w.name]:.0f} | {row.batch_size} | {n} "
            f"| {n / min(cmd.ours):.2f} / {n / min(cmd.theirs):.2f} | {cmd.ratio():.2f}x "
            f"| {n / min(sc.ours):.2f} / {n / min(sc.theirs):.2f} | {sc.ratio():.2f}x | {diff} "
            f"| {w.metric} {a.ours:.4f} | {w.metric} {a.theirs:.4f} |"
        )
    print("\n| workload | batch | check | value | target | met |")
    print("| --- | ---: | --- | ---: | --- | --- |")
    missed = []
    for row in rows:
        w, a = row.workload, row.agreement
        checks = [
            _speed("command speed", row.command.ratio(), w.target),
            _speed("scoring speed", row.scoring.ratio(), w.target),
            (f"same {w.metric}", f"{a.ours:.4f} / {a.theirs:.4f}", "equal", abs(a.ours - a.theirs) < 1e-9),
        ]
        if a.max_ll_diff is not None:
            ok = a.max_ll_diff <= LL_TOLERANCE
            checks.append(("log-likelihoods", f"{a.max_ll_diff:.2e}", f"<= {LL_TOLERANCE}", ok))
        for check, value, target, ok in checks:
            print(f"| {w.name} | {row.batch_size} | {check} | {value} | {target} | {'yes' if ok else 'NO'} |")
            if not ok:
                missed.append(f"{w.name} batch {row.batch_size}: {check} {value} (target {target})")
    print()
    print("targets met" if not missed else "TARGETS MISSED:\n  " + "\n  ".join(missed))
    return not missed


def _speed(check: str, ratio: float, target: float) -> tuple[str, str, str, bool]:
    return check, f"{ratio:.2f}x", f">= {target}x", ratio >= target


def build_model(out: Path, size: str, workloads: list[Workload]) -> Path:
    from tests.fixtures.bos_llama import build_bos_llama

    layers, hidden, intermediate, heads, kv_heads = SIZES[size]
    text = corpus({w.name: (w.data_dir, [w.unit]) for w in workloads})
    return build_bos_llama(
        out,
        seed=0,
        corpus=text,
        layers=layers,
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=intermediate,
        heads=heads,
        kv_heads=kv_heads,
    )


@contextmanager
def workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        if keep.exists() and any(keep.iterdir()):
            sys.exit(f"--keep {keep}: give a new or empty directory (every run writes its own folder there)")
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
    else:
        with tempfile.TemporaryDirectory(prefix="scoring-bench-") as tmp:
            yield Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=8, help="evaluated documents per workload")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure; the fastest counts")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    names = ["MC-multi", "MC-single", "MC-word", "GEN"]
    parser.add_argument("--workloads", nargs="+", choices=names, default=names)
    parser.add_argument("--keep", type=Path, help="keep the model, data and every run's output here")
    parser.add_argument("--device", default="cpu", help="cpu (float32) or cuda (bfloat16)")
    parser.add_argument("--model-size", choices=sorted(SIZES), help="default: 8m on cpu, 1b on cuda")
    args = parser.parse_args()
    for name, value in (
        ("HF_DATASETS_OFFLINE", "1"),
        ("HF_HUB_OFFLINE", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
    ):
        os.environ.setdefault(name, value)  # inherited by both CLIs
    import logging

    logging.disable(logging.WARNING)
    started = time.perf_counter()
    cpu = args.device == "cpu"
    size = args.model_size or ("8m" if cpu else "1b")
    workloads = [w for w in build_workloads(args.rows) if w.name in args.workloads]
    with workdir(args.keep) as root:
        # lm-eval's datasets cache here, not in ~/.cache; kept across runs, as a user's would be
        os.environ["HF_DATASETS_CACHE"] = str(root / "hf_datasets_cache")
        data_root = root / "data"
        write_data(data_root, {w.name: (w.data_dir, [w.unit]) for w in workloads})
        model_dir = build_model(root / "model", size, workloads)
        setup = Setup(
            root,
            model_dir,
            data_root,
            write_lm_eval_configs(root / "lm_eval_tasks", data_root, workloads),
            args.device,
            "float32" if cpu else "bfloat16",
        )
        say(f"model and data in {root}")
        measured = {}
        for w in workloads:
            for batch_size in args.batch_sizes:
                measured[w.name, batch_size] = commands(setup, w, batch_size, args.repeat)
        timed = scoring(setup, workloads, args.batch_sizes, args.repeat)
        tokens = {w.name: prompt_tokens(setup, w) for w in workloads}
        rows = [
            Row(w, b, measured[w.name, b][0], timed[w.name, b], measured[w.name, b][1])
            for w in workloads
            for b in args.batch_sizes
        ]
        vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
        print(
            f"model: random Llama, {parameters(model_dir) / 1e6:.1f}M parameters, vocabulary "
            f"{vocab}, {setup.dtype} on {setup.device}; {args.rows} documents per "
            f"workload, {args.repeat} repeats (fastest counts), {time.perf_counter() - started:.0f}s in all\n"
        )
        ok = report(rows, tokens)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
