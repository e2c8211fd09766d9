"""Class 4: one line where one line is promised, whatever the user typed or the machine did."""

# ruff: noqa: E501  (the case tables read best one case per line)

from __future__ import annotations

import codecs
import json
import shutil
import signal
import subprocess

import pytest

from tests.faults.conftest import CLI, Workspace, expect, has_rows, signal_when

LATIN1 = b"name: caf" + "é".encode("latin-1") + b"\n"


def _task(ws: Workspace, name: str, body: str | bytes) -> str:
    path = ws.root / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return name


@pytest.mark.parametrize(
    ("setup", "args", "code", "says"),
    [
        (
            "config-latin1",
            ["--config", "run.yaml"],
            2,
            "--config run.yaml is not UTF-8 text (byte 0xe9 at line 2, column 10); save it as UTF-8",
        ),
        ("env-latin1", ["--env-file", "my.env"], 2, "env file my.env is not UTF-8 text (byte 0xe9 at line 1"),
        (
            "config-yaml",
            ["--config", "run.yaml"],
            2,
            "is not valid YAML (run.yaml:3:1: expected the node content",
        ),
        ("config-list", ["--config", "run.yaml"], 2, "must hold a mapping of option names to values"),
        ("config-unknown", ["--config", "run.yaml"], 2, "unknown option 'num_fewshots' in the --config file"),
        ("config-missing", ["--config", "nope.yaml"], 2, "cannot read --config nope.yaml"),
        ("config-dir", ["--config", "letters"], 2, "is a directory; pass the path of a file"),
        ("env-missing", ["--env-file", "nope.env"], 2, "--env-file nope.env does not exist"),
    ],
)
def test_bad_config_and_env_files(ws, setup, args, code, says):
    files = {
        "config-latin1": ("run.yaml", b"num_fewshot: 1\n" + LATIN1),
        "env-latin1": ("my.env", b"OPENAI_API_KEY=caf\xe9\n"),
        "config-yaml": ("run.yaml", b"num_fewshot: 1\nseed: [1,\n"),
        "config-list": ("run.yaml", b"- num_fewshot\n"),
        "config-unknown": ("run.yaml", b"num_fewshots: 1\n"),
    }
    if setup in files:
        name, data = files[setup]
        (ws.root / name).write_bytes(data)
    result = ws.evaluate(*args)
    expect(result, code, says)
    ws.keeper_intact()


def test_a_utf16_config_file_from_a_windows_editor_just_works(ws):
    (ws.root / "run.yaml").write_bytes(codecs.BOM_UTF16_LE + "num_samples: 5\n".encode("utf-16-le"))
    expect(ws.evaluate("--config", "run.yaml"), 0, lines=0)
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("name", "body", "code", "says"),
    [
        ("latin1.yaml", b"name: x\ndata:\n  eval: letters/eval.jsonl\n" + LATIN1, 2, "is not UTF-8 text"),
        ("syntax.yaml", "name: x\nprompt: '{q}\ndata: [\n", 2, "is not valid YAML (syntax.yaml:"),
        ("nofield.yaml", "name: x\ndata:\n  eval: letters/eval.jsonl\nchoices: options\ntarget: gold\n", 2,
         "Field required (field 'prompt')"),
        ("nodata.yaml", "name: x\ndata:\n  eval: missing.jsonl\nprompt: '{q}'\nchoices: options\ntarget: gold\n",
         4, "data file missing.jsonl does not exist"),
        ("badfield.yaml", "name: x\ndata:\n  eval: letters/eval.jsonl\nprompt: '{question}'\nchoices: options\n"
         "target: gold\n", 4, "uses field 'question', which the row lacks"),
    ],
)  # fmt: skip
def test_bad_task_files(ws, name, body, code, says):
    _task(ws, name, body)
    result = ws.run(
        "--models", "models.py", "--llm-name", "HashLLM", "--task-name", name, "--output-dir", ws.out
    )
    expect(result, code, says)
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("data_name", "data", "code", "says"),
    [
        ("rows.jsonl", b'{"q": "a", "options": ["x"], "gold": 0}\n42\n', 4, "rows.jsonl:2 holds a number, not a JSON object"),
        ("rows.jsonl", b'{"q": "a", "options": ["x"], "gold": 0}\n{"q": \n', 4, "rows.jsonl:2 is not valid JSON"),
        ("rows.jsonl", b'{"q": "caf\xe9", "options": ["x"], "gold": 0}\n', 4, "rows.jsonl is not UTF-8 text (byte 0xe9"),
        ("rows.json", b'{"rows": []}', 4, "holds an object; fix the file: it must hold a JSON list of row objects"),
        ("rows.csv", b"q,options,gold\na,b,c,d\n", 4, "rows.csv:2 has more cells than the header has columns"),
        ("rows.parquet", b"not parquet", 4, "is not a readable Parquet file"),
    ],
)  # fmt: skip
def test_bad_data_files(ws, data_name, data, code, says):
    (ws.root / data_name).write_bytes(data)
    task = _task(
        ws,
        "t.yaml",
        f"name: t\ndata:\n  eval: {data_name}\nprompt: '{{q}}'\nchoices: options\ntarget: gold\n",
    )
    result = ws.run(
        "--models", "models.py", "--llm-name", "HashLLM", "--task-name", task, "--output-dir", ws.out
    )
    expect(result, code, says)
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--bogus"], "no such option: --bogus"),
        (["--num-fewshot", "abc"], "invalid value for '--num-fewshot'"),
        (["--num-fewshot", "-1"], "invalid --num-fewshot: Input should be greater than or equal to 0"),
        (
            ["--wandb-mode", "sometimes", "--wandb-project", "p"],
            "invalid --wandb-mode: Input should be 'online', 'offline' or 'disabled'",
        ),
        (["--wandb-run-id", "bad id!", "--wandb-project", "p"], "invalid --wandb-run-id"),
        (["--hf-upload-repo", "noslash"], "invalid --hf-upload-repo"),
        (["--llm-args", "api_key:sk-TYPO-secret-1234"], "bad --llm-args entry 'api_key:***'"),
        (["--subjects", "nosuch"], "unknown --subjects nosuch for letters"),
        (["--num-fewshot", "9"], "--num-fewshot 9 is larger than the few-shot pool"),
        (["--task-data-dir", "letters"], "--task-data-dir applies to built-in benchmarks"),
    ],
)
def test_usage_errors_are_one_line(ws, args, says):
    result = ws.evaluate(*args)
    code = 4 if "larger than" in says else 2
    expect(result, code, says)
    assert "sk-TYPO-secret-1234" not in result.err
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--task-name", "hellaswg"], 4, "unknown task 'hellaswg'. Did you mean: HellaSwag?"),
        (["--llm-name", "Helper"], 3, "Helper in models.py is not a model class: it has no loglikelihood()"),
        (["--llm-name", "nosuchmod.Cls"], 3, "--llm-name takes a class in the --models file"),
        (["--llm-name", "HashLM"], 3, "class 'HashLM' not found in models.py (did you mean HashLLM?)"),
        (["--models", "nope.py"], 3, "--models file nope.py does not exist"),
        (["--models", "broken.py"], 3, "broken.py:1 has a syntax error"),
        (["--models", "imports.py"], 3, "importing --models file"),
    ],
)
def test_wrong_directions_say_which_way_to_go(ws, args, code, says):
    (ws.root / "broken.py").write_text("def oops(:\n")
    (ws.root / "imports.py").write_text("import package_that_is_not_installed\n")
    expect(ws.run(*ws.command(*args)), code, says)
    ws.keeper_intact()


def test_a_models_file_that_imports_its_own_package_works_as_in_the_seed(ws):
    """``--models tests/conftest.py`` where tests/ is a package importing its siblings."""
    tests = ws.root / "proj" / "tests"
    tests.mkdir(parents=True)
    (ws.root / "proj" / "pyproject.toml").write_text("[project]\nname = 'proj'\n")
    (tests / "__init__.py").write_text("")
    (tests / "helpers.py").write_text("from user_models import HashLLM\n")
    shutil.copy(ws.root / "user_models.py", ws.root / "proj" / "user_models.py")
    (tests / "conftest.py").write_text(
        "from tests.helpers import HashLLM\n\n\nclass Llama31_8B_Instruct_HF(HashLLM):\n    pass\n"
    )
    result = ws.run("--context", "local", "--models", "proj/tests/conftest.py", "--llm-name",
                    "Llama31_8B_Instruct_HF", "--task-name", "letters.yaml", "--num-fewshot", "3",
                    "--num-samples", "10", "--output-dir", ws.out)  # fmt: skip
    expect(result, 0, lines=0)
    assert any(p.name.startswith("Llama31_8B_Instruct_HF__letters__3shot__10__") for p in ws.out.iterdir())
    ws.keeper_intact()


def test_a_model_that_crashes_mid_run_keeps_finished_samples(ws):
    result = ws.evaluate("--num-fewshot", "1", "--batch-size", "1", env={"EF_TEST_CRASH_AFTER": "100"})
    expect(result, 3, "the model failed during loglikelihood(): RuntimeError: simulated crash",
           "rerun the same command to resume")  # fmt: skip
    expect(ws.evaluate("--num-fewshot", "1"), 0, lines=0)
    ws.keeper_intact()


def test_a_model_error_of_many_lines_is_told_in_one(ws):
    text = "CUDA error: out of memory\n  Tried to allocate 2.00 GiB\n\nCompile with TORCH_USE_CUDA_DSA"
    result = ws.evaluate("--num-fewshot", "1", env={"EF_TEST_CRASH_AFTER": "0", "EF_TEST_CRASH_TEXT": text})
    expect(result, 3, "RuntimeError: CUDA error: out of memory Tried to allocate 2.00 GiB Compile with")
    (log,) = [p / "eval.log" for p in ws.out.iterdir() if "1shot" in p.name and p.is_dir()]
    assert "Traceback" in log.read_text()
    assert "\nCompile with TORCH_USE_CUDA_DSA" in log.read_text()
    ws.keeper_intact()


def test_a_second_run_on_the_same_bundle_is_refused(ws):
    from filelock import FileLock

    with FileLock(str(ws.out / f".{ws.keeper.name}.lock")):
        result = ws.evaluate("--overwrite")
    expect(result, 5, "another process is already evaluating into", "wait for it to finish")
    ws.keeper_intact()


def test_an_output_dir_that_is_a_file(ws):
    (ws.root / "afile").write_text("x")
    result = ws.run(*ws.KEEPER_ARGS, "--output-dir", "afile/out")
    expect(result, 5, "cannot write to output directory afile/out", "choose another --output-dir")
    ws.keeper_intact()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_evaluation_says_what_is_kept(ws, sig):
    from tests.faults.conftest import SIGNALS

    proc = ws.start(*ws.KEEPER_ARGS, "--output-dir", ws.out, "--num-fewshot", "1", "--batch-size", "1",
                    env={"EF_TEST_SLEEP": "2"})  # fmt: skip
    result = signal_when(proc, lambda: has_rows(ws.out, "*1shot*"), SIGNALS[sig])
    code, word = (130, "interrupted") if sig == "SIGINT" else (143, "stopped by SIGTERM")
    expect(result, code, f"{word}: whatever finished is saved under", "rerun the same command to resume")
    resumed = ws.evaluate("--num-fewshot", "1")
    expect(resumed, 0, lines=0)
    ws.keeper_intact()


def _tmpfs_available() -> bool:
    try:
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                               capture_output=True, timeout=20)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def test_a_full_disk_stops_with_exit_5_and_the_rerun_resumes(ws):
    """A real full filesystem: a tmpfs in a private mount namespace, sized to what the output dir
    holds plus 8 KiB, gets a copy of it; where namespaces are not allowed, samples.jsonl is
    pointed at /dev/full, which fails every write with the same ENOSPC."""
    from tests.faults.conftest import Result

    crashed = ws.evaluate("--num-fewshot", "1", "--batch-size", "1", env={"EF_TEST_CRASH_AFTER": "1"})
    assert crashed.code == 3, crashed.err  # a partial bundle with its first rows
    (partial,) = [p for p in ws.out.iterdir() if p.is_dir() and "1shot__all" in p.name]
    args = [*ws.KEEPER_ARGS, "--num-fewshot", "1", "--batch-size", "1"]
    if _tmpfs_available():
        pages = sum(p.stat().st_size // 4096 + 1 for p in ws.out.rglob("*") if p.is_file())
        size = (pages + 2) * 4096  # what is there (tmpfs stores whole pages), plus room for a few rows
        disk = ws.root / "disk"
        disk.mkdir()
        script = (f"mount -t tmpfs -o size={size} tmpfs {disk} && cp -a {ws.out} {disk}/out && "
                  f"{CLI} {' '.join(args)} --output-dir {disk}/out; code=$?; "
                  f"cp -a {disk}/out/. {ws.out}/; exit $code")  # fmt: skip
        proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ws.root,
                              env=ws.environment(None), capture_output=True, text=True, timeout=120)  # fmt: skip
        result = Result(proc.returncode, proc.stdout, proc.stderr, 0.0)
    else:
        samples = partial / "samples.jsonl"
        samples.unlink()
        samples.symlink_to("/dev/full")
        result = ws.run(*args, "--output-dir", ws.out)
        samples.unlink()
    expect(result, 5, "the disk is full", "rerun the same command: finished samples are kept")
    expect(ws.evaluate("--num-fewshot", "1"), 0, lines=0)
    assert json.loads((partial / "results.json").read_text())["metrics"]["overall"]["acc"]["n"] == 40
    ws.keeper_intact()


def test_a_signal_before_anything_loaded_is_one_line_too(ws):
    proc = ws.start(*ws.KEEPER_ARGS, "--output-dir", ws.out, "--num-fewshot", "1", "--batch-size", "1",
                    env={"EF_TEST_SLEEP": "5"})  # fmt: skip
    result = signal_when(proc, lambda: any("1shot" in p.name for p in ws.out.iterdir()), signal.SIGTERM)
    expect(result, 143, "stopped by SIGTERM")
    ws.keeper_intact()


BAD_MODELS = """\
import argparse
import sys
from eval_framework import BaseLLM, LoglikelihoodResult

class NaN(BaseLLM):
    def loglikelihood(self, requests):
        return [LoglikelihoodResult(logprob=float("nan"), is_greedy=False) for r in requests]

class Floats(BaseLLM):
    def loglikelihood(self, requests):
        return [-1.0 for r in requests]

class Text(BaseLLM):
    def loglikelihood(self, requests):
        return [LoglikelihoodResult(logprob="abc", is_greedy=False) for r in requests]

class Positive(BaseLLM):
    def loglikelihood(self, requests):
        return [LoglikelihoodResult(logprob=0.5, is_greedy=False) for r in requests]

class GreedyNumber(BaseLLM):
    def loglikelihood(self, requests):
        return [LoglikelihoodResult(logprob=-1.0, is_greedy=1) for r in requests]

class Quits(BaseLLM):
    def loglikelihood(self, requests):
        sys.exit(0)

class GenerateOnly(BaseLLM):
    def generate(self, requests):
        return ["x" for r in requests]
"""


@pytest.mark.parametrize(
    ("file", "name", "says"),
    [
        ("bad_models.py", "NaN", "returned logprob nan at position 0; fix the model"),
        (
            "bad_models.py",
            "Floats",
            "returned float at position 0 (logprob None); fix it to return LoglikelihoodResult",
        ),
        ("bad_models.py", "Text", "returned LoglikelihoodResult at position 0 (logprob 'abc')"),
        ("bad_models.py", "Positive", "returned logprob 0.5 at position 0; fix the model (a log-probability"),
        ("bad_models.py", "GreedyNumber", "returned is_greedy=1 (int) at position 0; fix it to return True"),
        ("bad_models.py", "Quits", "the model called sys.exit(0) during loglikelihood()"),
        (
            "bad_models.py",
            "GenerateOnly",
            "needs a model with loglikelihood(), which GenerateOnly does not implement",
        ),
        ("exits.py", "X", "called sys.exit(0) while being imported"),
        ("parses.py", "X", "called sys.exit(2) while being imported (argparse at module level? It printed:"),
    ],
)
def test_a_model_that_misbehaves_is_a_model_error(ws, file, name, says):
    (ws.root / "bad_models.py").write_text(BAD_MODELS)
    (ws.root / "exits.py").write_text("import sys\nsys.exit(0)\n")
    (ws.root / "parses.py").write_text("import argparse\nargparse.ArgumentParser().parse_args()\n")
    before = sorted(p.name for p in ws.out.iterdir())
    result = ws.run(
        "--models", file, "--llm-name", name, "--task-name", "letters.yaml", "--output-dir", ws.out
    )
    expect(result, 3, says)
    if name in ("GenerateOnly", "X"):  # found before anything is made
        assert sorted(p.name for p in ws.out.iterdir()) == before
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("config", "says"),
    [
        (
            "llm_args: 'bias=1'\n",
            "'llm_args' in the --config file (--llm-args): Input should be a valid dict",
        ),
        (
            "llm_args: [bias=1]\n",
            "'llm_args' in the --config file (--llm-args): Input should be a valid dict",
        ),
        (
            "num_fewshot: true\n",
            "'num_fewshot' in the --config file (--num-fewshot): Input should be a valid int",
        ),
        ("wandb_tags: 5\n", "invalid --wandb-tags: expected names, as a list or one comma-separated string"),
        ("wandb_tags: [a, [b]]\n", "invalid --wandb-tags: expected names"),
        ("wandb_project: a/b\n", "'a/b' is not a W&B project name"),
        ("wandb_project: p\nwandb_registry: 'bad name!'\n", "'bad name!' is not a registry"),
    ],
)
def test_config_values_of_the_wrong_shape_are_named(ws, config, says):
    (ws.root / "run.yaml").write_text(config)
    expect(ws.evaluate("--config", "run.yaml"), 2, says)
    ws.keeper_intact()


def test_one_config_file_serves_the_evaluation_and_upload(ws):
    (ws.root / "run.yaml").write_text(
        "models: models.py\nllm_name: HashLLM\ntask_name: letters.yaml\nnum_samples: 7\n"
        "wandb_project: evals\nwandb_mode: offline\nwandb_tags: 'nightly, sweep'\nsubjects: a,b\n"
    )
    expect(ws.run("--config", "run.yaml", "--output-dir", ws.out), 0, "logged offline; sync it with")
    plan = json.loads(ws.run("upload", ws.out, "--config", "run.yaml", "--dry-run").out)
    assert all({"nightly", "sweep"} <= set(p["wandb"]["tags"]) for p in plan)
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--llm-args", "bias=true"], 2, "invalid --llm-args bias=True for HashLLM: expected str"),
        (["--llm-name", "embedded", "--models", "models.py", "--llm-args", "checkpoint=/tmp"], 2,
         "--llm-name embedded evaluates the shipped checkpoints and takes no --llm-args checkpoint"),
        (["--env-file", "letters"], 2, "--env-file letters is a directory"),
        (["--wandb-project", "a/b"], 2, "'a/b' is not a W&B project name"),
    ],
)  # fmt: skip
def test_more_arguments_refused_before_anything_starts(ws, args, code, says):
    before = sorted(p.name for p in ws.out.iterdir())
    expect(ws.run(*ws.command(*args)), code, says)
    assert sorted(p.name for p in ws.out.iterdir()) == before
    ws.keeper_intact()


def test_a_malformed_dotenv_names_the_line(ws):
    (ws.root / ".env").write_text('HF_TOKEN=hf_abc\nWANDB_API_KEY="unclosed\nWANDB_BASE_URL=http://x\n')
    expect(ws.evaluate(), 2, ".env:2 cannot be read as NAME=value", "fix the line")
    (ws.root / ".env").unlink()
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        ("prompt: '{q.upper}'\n", 2, "uses {q.upper}; use plain field names"),
        ("prompt: '{q}'\ndata: {eval: letters}\n", 4, "letters is a directory; use the path of a .jsonl"),
    ],
)
def test_more_task_file_mistakes(ws, body, code, says):
    base = "name: t\ndata: {eval: letters/eval.jsonl}\nchoices: options\ntarget: gold\n"
    lines = dict(line.split(":", 1) for line in (base + body).splitlines())
    (ws.root / "t.yaml").write_text("".join(f"{k}:{v}\n" for k, v in lines.items()))
    result = ws.run(
        "--models", "models.py", "--llm-name", "HashLLM", "--task-name", "t.yaml", "--output-dir", ws.out
    )
    expect(result, code, says)
    ws.keeper_intact()


def test_a_flat_copy_of_a_benchmark_with_several_configs_is_refused(ws):
    (ws.root / "arc").mkdir()
    row = {
        "id": "q1",
        "question": "Which?",
        "answerKey": "A",
        "choices": {"text": ["x", "y"], "label": ["A", "B"]},
    }
    (ws.root / "arc" / "test.jsonl").write_text(json.dumps(row) + "\n")
    result = ws.run("--models", "models.py", "--llm-name", "HashLLM", "--task-name", "ARC", "--task-data-dir",
                    "arc", "--output-dir", ws.out)  # fmt: skip
    expect(result, 4, "expected ARC-Easy/test", "one folder per config")
    ws.keeper_intact()


def test_a_benchmark_with_the_hub_unreachable_fails_at_once(ws):
    result = ws.run("--models", "models.py", "--llm-name", "HashLLM", "--task-name", "ARC-Easy", "--output-dir",
                    ws.out, env={"HF_HUB_OFFLINE": None, "HF_DATASETS_OFFLINE": None})  # fmt: skip
    expect(result, 4, "cannot be reached (connection refused)", "HF_DATASETS_OFFLINE=1", "--task-data-dir")
    assert result.seconds < 20
    ws.keeper_intact()


@pytest.mark.parametrize("delay", [0.2, 0.35, 0.5])
def test_ctrl_c_while_starting_is_one_line(ws, delay):
    proc = ws.start(*ws.KEEPER_ARGS, "--output-dir", ws.out, "--num-fewshot", "1")
    import time

    time.sleep(delay)  # the command is importing its modules, building its parser, loading the model
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    from tests.faults.conftest import Result

    if "HashLLM on letters" in out:
        # On a quick machine the command had already finished (it reuses the keeper bundle): the
        # signal landed while it was exiting, after every result was written. Nothing to say, or
        # that nothing is lost.
        assert proc.returncode in (0, -signal.SIGINT, 130), err
        assert not err.strip() or "while exiting: nothing is lost" in err, err
        ws.keeper_intact()
        return
    expect(Result(proc.returncode, out, err, 0.0), 130, "interrupted")
    ws.keeper_intact()
