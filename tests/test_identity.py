"""Everything that changes results is in the evaluation's key; nothing else is.

Each test changes one input and expects a new key (a silently reused result is the worst
failure an evaluation framework can have), or changes something that cannot change results and
expects the same key.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from eval_framework.config import EvalConfig
from eval_framework.eval_plan import make_plan
from tests.conftest import USER_MODELS


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _arc_copy(root: Path, question: str = "Which is a planet?", shots: str = "Which is a star?") -> Path:
    row = {"id": "q1", "question": question, "answerKey": "B",
           "choices": {"text": ["Moon", "Mars", "Sun"], "label": ["A", "B", "C"]}}  # fmt: skip
    _write(root / "test.jsonl", [row, {**row, "id": "q2"}])
    _write(root / "train.jsonl", [{**row, "id": "s1", "question": shots}, {**row, "id": "s2"}])
    return root


def _key(**overrides: object) -> str:
    values: dict = {"llm_name": "HashLLM", "models": USER_MODELS, "task_name": "ARC-Easy", "num_fewshot": 1}
    values.update(overrides)
    return make_plan(EvalConfig(**values)).key


def test_local_copies_of_a_benchmark_are_told_apart_by_content(tmp_path):
    a = _key(task_data_dir=_arc_copy(tmp_path / "a"))
    assert _key(task_data_dir=_arc_copy(tmp_path / "b", question="Which is a moon?")) != a
    assert _key(task_data_dir=_arc_copy(tmp_path / "c", shots="Which is a comet?")) != a  # few-shot pool
    assert _key(task_data_dir=_arc_copy(tmp_path / "same")) == a  # where the copy lies does not matter
    assert _key(task_data_dir=_arc_copy(tmp_path / "d"), batch_size=64) == a


def test_task_yaml_templates_and_data_are_in_the_key(letters_task):
    base = _key(task_name=str(letters_task))
    spec = letters_task.read_text()
    letters_task.write_text(spec.replace("prompt: '{q}'", "prompt: 'Q: {q}'"))
    assert _key(task_name=str(letters_task)) != base
    letters_task.write_text(spec)
    assert _key(task_name=str(letters_task)) == base
    shots = letters_task.parent / "letters" / "shots.jsonl"
    shots.write_text(shots.read_text().replace("abcd", "abce", 1))
    assert _key(task_name=str(letters_task)) != base


def test_settings_that_change_results_are_in_the_key(letters_task):
    base = _key(task_name=str(letters_task))
    for change in ({"num_fewshot": 0}, {"seed": 5}, {"num_samples": 3}, {"llm_args": {"bias": "x"}},
                   {"subjects": ("copy",)}):  # fmt: skip
        assert _key(task_name=str(letters_task), **change) != base, change
    for same in (
        {"batch_size": 1},
        {"output_dir": Path("elsewhere")},
        {"llm_args": {"api_key": "sk-123456"}},
    ):
        assert _key(task_name=str(letters_task), **same) == base, same


def test_checkpoint_contents_not_names_and_sizes_make_the_key(tiny_model_dir, tmp_path, letters_task):
    ckpt = shutil.copytree(tiny_model_dir, tmp_path / "ckpt")

    def key() -> str:
        return _key(
            llm_name="hf", models=None, llm_args={"checkpoint": str(ckpt)}, task_name=str(letters_task)
        )

    base = key()
    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    stat = weights.stat()
    data[-1] ^= 0xFF  # one byte of a weight: same name, same size
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old modification time
    assert key() != base
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert key() == base
    moved = shutil.copytree(ckpt, tmp_path / "moved")
    assert _key(llm_name="hf", models=None, llm_args={"checkpoint": str(moved)},
                task_name=str(letters_task)) == base  # fmt: skip


def test_checkpoint_digests_are_cached_by_file_identity(tiny_model_dir, tmp_path, monkeypatch):
    from eval_framework import fingerprint

    ckpt = shutil.copytree(tiny_model_dir, tmp_path / "ckpt")
    first = fingerprint.directory_fingerprint(ckpt)
    reads: list[Path] = []
    real = fingerprint._uncached_sha256
    monkeypatch.setattr(fingerprint, "_uncached_sha256", lambda p: reads.append(p) or real(p))
    assert fingerprint.directory_fingerprint(ckpt) == first
    assert reads == []
    (ckpt / "config.json").write_text((ckpt / "config.json").read_text() + " ")
    fingerprint.directory_fingerprint(ckpt)
    assert reads == [ckpt / "config.json"]  # only the changed file is read again


def test_a_hub_id_is_known_by_the_commit_it_points_at(tmp_path, monkeypatch, letters_task):
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    ref = cache / "models--acme--tiny" / "refs" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text("a" * 40)

    def key(**args: str) -> str:
        return _key(llm_name="hf", models=None, llm_args={"checkpoint": "acme/tiny", **args},
                    task_name=str(letters_task))  # fmt: skip

    first = key()
    ref.write_text("b" * 40)  # the branch moved
    assert key() != first
    assert key(revision="c" * 40) != key(revision="d" * 40)


def test_editing_a_user_model_class_changes_the_key(tmp_path, letters_task):
    models = tmp_path / "my_models.py"
    source = (
        "from eval_framework import BaseLLM, LoglikelihoodResult\n\n"
        "class Mine(BaseLLM):\n"
        "    def loglikelihood(self, requests):\n"
        "        return [LoglikelihoodResult(-1.0, False) for _ in requests]\n"
    )
    models.write_text(source)
    base = _key(llm_name="Mine", models=models, task_name=str(letters_task))
    models.write_text(source.replace("-1.0", "-2.0"))
    import sys

    for name in [n for n in sys.modules if n.startswith("eval_framework_user_models_")]:
        del sys.modules[name]  # a new process would import the edited file
    assert _key(llm_name="Mine", models=models, task_name=str(letters_task)) != base


@pytest.mark.parametrize("flag", ["task_data_dir"])
def test_a_task_file_refuses_a_data_dir_it_would_ignore(letters_task, tmp_path, flag):
    from eval_framework.errors import ConfigError

    with pytest.raises(ConfigError, match="--task-data-dir applies to built-in benchmarks"):
        _key(task_name=str(letters_task), **{flag: tmp_path})


def test_spellings_of_the_same_evaluation_share_one_key(letters_task):
    task = str(letters_task)
    assert _key(task_name=task, subjects=("reverse", "copy")) == _key(
        task_name=task, subjects=("copy", "reverse", "copy")
    )
    assert _key(task_name=task, subjects=("reverse", "copy")) == _key(task_name=task)  # all of them
    assert _key(task_name=task, subjects=("copy",)) != _key(task_name=task)
    assert (
        _key(task_name=task, num_samples=6) == _key(task_name=task) == _key(task_name=task, num_samples=999)
    )
    assert _key(task_name=task, num_samples=5) != _key(task_name=task)


def test_listing_every_subject_is_the_whole_task_only_when_it_selects_the_same_samples(letters_task):
    task = str(letters_task)
    data = letters_task.parent / "letters" / "eval.jsonl"
    loose = '{"q": "rot: abcd ->", "options": ["bcde", "abcd", "dcba"], "gold": 0}'
    data.write_text(data.read_text() + loose + "\n")  # a row with no subject: only the whole task has it
    assert _key(task_name=task, subjects=("reverse", "copy")) != _key(task_name=task)


def test_a_generation_length_equal_to_the_tasks_own_is_the_default(tmp_path):
    data = tmp_path / "g.jsonl"
    data.write_text("".join(json.dumps({"q": f"{i} + 1 =", "a": str(i + 1)}) + "\n" for i in range(4)))
    spec = tmp_path / "gen.yaml"
    spec.write_text(
        "name: gen\nkind: generation\ndata: {eval: g.jsonl}\nprompt: '{q}'\ntarget: a\nmax_tokens: 8\n"
    )
    assert _key(task_name=str(spec), max_tokens=8) == _key(task_name=str(spec))
    assert _key(task_name=str(spec), max_tokens=9) != _key(task_name=str(spec))


def test_a_flat_local_copy_of_a_benchmark_with_several_configs_is_refused(tmp_path):
    from eval_framework.errors import DatasetUnavailableError

    flat = _arc_copy(tmp_path / "flat")
    with pytest.raises(DatasetUnavailableError, match=r"expected ARC-Easy/test.*one folder per config"):
        _key(task_name="ARC", task_data_dir=flat)
    assert _key(task_name="ARC-Easy", task_data_dir=flat)  # one config: a flat copy is unambiguous


SECRETIVE = """\
from eval_framework import BaseLLM, LoglikelihoodResult


class Secretive(BaseLLM):
    def __init__(self, token_budget: int = 4, reward_key: str = "a", temperature: float = 0.0,
                 greedy: bool = False) -> None:
        self.budget = token_budget

    def loglikelihood(self, requests):
        return [LoglikelihoodResult(-1.0, False) for r in requests]
"""


def _secretive(tmp_path: Path, letters_task: Path, **args: object):
    models = tmp_path / "secretive.py"
    models.write_text(SECRETIVE)
    return make_plan(
        EvalConfig(llm_name="Secretive", models=models, task_name=str(letters_task), llm_args=args)
    )


def test_no_argument_value_is_dropped_for_its_name(tmp_path, letters_task):
    one, two = (
        _secretive(tmp_path, letters_task, token_budget=1),
        _secretive(tmp_path, letters_task, token_budget=2),
    )
    assert one.key != two.key
    assert one.identity["model"]["args"] == {"token_budget": 1}
    a = _secretive(tmp_path, letters_task, reward_key="sekrit-one")
    b = _secretive(tmp_path, letters_task, reward_key="sekrit-two")
    assert a.key != b.key  # a secret-looking name still tells values apart...
    assert a.key == _secretive(tmp_path, letters_task, reward_key="sekrit-one").key
    stored = json.dumps(a.identity)
    assert "sekrit" not in stored
    assert a.identity["model"]["args"]["reward_key"].startswith("pbkdf2:")


def test_an_argument_given_as_its_default_is_the_same_evaluation(tmp_path, letters_task):
    plain = _secretive(tmp_path, letters_task).key
    assert _secretive(tmp_path, letters_task, token_budget=4, temperature=0.0, greedy=False).key == plain
    assert _secretive(tmp_path, letters_task, temperature=0.5).key != plain
    assert _secretive(tmp_path, letters_task, greedy=True).key != plain


NAMED = """\
from eval_framework import BaseLLM, LoglikelihoodResult


class Picker(BaseLLM):
    def __init__(self, name: str = "good") -> None:
        self.prefer = 0 if name == "good" else 1

    def loglikelihood(self, requests):
        return [LoglikelihoodResult(-1.0, False) for r in requests]


class Plain(BaseLLM):
    def __init__(self, **options) -> None:  # passes name on, as a display name
        self.options = options

    def loglikelihood(self, requests):
        return [LoglikelihoodResult(-1.0, False) for r in requests]
"""


def test_name_is_only_a_display_name_where_the_class_does_not_take_it(tmp_path, letters_task):
    models = tmp_path / "named.py"
    models.write_text(NAMED)

    def key(cls: str, name: str) -> str:
        config = EvalConfig(llm_name=cls, models=models, task_name=str(letters_task), llm_args={"name": name})
        return make_plan(config).key

    assert key("Picker", "good") != key("Picker", "bad")  # the class's own argument: results may differ
    assert key("Plain", "a") == key("Plain", "b")  # only how the bundle is titled


def test_any_change_in_what_the_model_sees_is_a_new_key(tmp_path, monkeypatch):
    """A change to how prompts are rendered (here a separator) needs no version bump to be seen."""
    from eval_framework.tasks.builtin import ARC

    data = _arc_copy(tmp_path / "arc")

    def key() -> str:
        config = EvalConfig(models=USER_MODELS, llm_name="HashLLM", task_name="ARC-Easy",
                            task_data_dir=data, num_fewshot=1)  # fmt: skip
        return make_plan(config).key

    before = key()
    monkeypatch.setattr(ARC, "fewshot_separator", "\n")
    assert key() != before
    monkeypatch.setattr(ARC, "fewshot_separator", "\n\n")
    monkeypatch.setattr(ARC, "continuation_prefix", "  ")
    assert key() != before
