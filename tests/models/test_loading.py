"""Model classes, arguments checked before anything is created, and models files imported the way
their authors expect."""

from __future__ import annotations

import sys

import pytest

from eval_framework.errors import ConfigError, ModelError
from eval_framework.models.loading import check_llm_args, find_model_class
from tests.conftest import USER_MODELS


def _cls(name: str = "HashLLM") -> type:
    return find_model_class(name, USER_MODELS)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"batch_size": "abc"}, r"invalid --llm-args batch_size='abc' for HashLLM: expected int"),
        ({"batch_size": [1]}, r"invalid --llm-args batch_size=\[1\] for HashLLM: expected int"),
        ({"bias": {"a": 1}}, r"invalid --llm-args bias=\{'a': 1\} for HashLLM: expected str"),
        (
            {"biass": "x"},
            r"does not accept --llm-args biass \(did you mean bias\?\); use the names it accepts: bias, "
            r"batch_size",
        ),
        ({"api_key": ["sk-abcdef123"]}, r"api_key='\*\*\*'"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument_and_type(args, says):
    with pytest.raises(ConfigError, match=says):
        check_llm_args(_cls(), args)


def test_values_are_converted_to_the_constructor_types():
    assert check_llm_args(_cls(), {"batch_size": "16", "bias": 12}) == {"batch_size": 16, "bias": "12"}


@pytest.mark.parametrize(
    ("name", "args", "says"),
    [
        (
            "embedded",
            {"version": "v9"},
            r"unknown --llm-args version='v9'; use one of the embedded versions: v0, v1, v2, latest",
        ),
        ("embedded", {"dtype": "float8"}, r"unknown --llm-args dtype='float8'"),
        ("embedded", {"batch_size": "abc"}, r"batch_size='abc' for EmbeddedTinyLLM: expected int or 'auto'"),
        (
            "embedded",
            {"vresion": "v1"},
            r"EmbeddedTinyLLM does not accept --llm-args vresion \(did you mean version\?\); use the names "
            r"it accepts: version, dtype, device, batch_size, max_length, add_bos_token, name$",
        ),
        ("embedded", {"revision": "main"}, r"takes no --llm-args revision; drop it"),
        ("embedded", {"trust_remote_code": "true"}, r"takes no --llm-args trust_remote_code; drop it"),
        ("hf", {}, r"HuggingFaceLLM needs a checkpoint"),
        ("hf", {"checkpoint": "x", "max_length": "long"}, r"max_length='long' for HuggingFaceLLM"),
        (
            "hf",
            {"checkpoint": "x", "add_bos_token": "maybe"},
            r"add_bos_token='maybe' .*; pass true or false \(or leave it out for the default\)$",
        ),
    ],
)
def test_builtin_backends_check_their_values_before_loading(name, args, says):
    with pytest.raises(ConfigError, match=says):
        check_llm_args(find_model_class(name, None), args)


def test_a_bad_argument_leaves_no_bundle_behind(cli, letters_task, tmp_path):
    out = tmp_path / "out"
    for args in (["batch_size=abc"], ["version=v9"], ["dtype=float8"], ["nosuch=1"]):
        result = cli("--llm-name", "embedded", "--llm-args", *args, "--task-name", letters_task,
                     "--output-dir", out)  # fmt: skip
        assert result.code == 2, result.err
        assert len(result.err.strip().splitlines()) == 1, result.err
        assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_a_class_that_is_not_a_model_is_named_as_such(tmp_path):
    with pytest.raises(ModelError, match=r"NotAModel in .* is not a model class: it has no loglikelihood"):
        _cls("NotAModel")
    with pytest.raises(ModelError, match=r"is not a model class"):
        find_model_class("tests.fixtures.user_models:NotAModel", None)


def test_an_unknown_module_says_what_llm_name_takes():
    with pytest.raises(ModelError, match=r"cannot import module 'nosuchmod'.*--llm-name takes a class in the "
                       r"--models file, a built-in backend .*is its package installed"):  # fmt: skip
        find_model_class("nosuchmod.Cls", None)
    with pytest.raises(
        ModelError, match=r"module 'tests.fixtures.user_models' has no 'HashLM' \(did you mean HashLLM"
    ):
        find_model_class("tests.fixtures.user_models:HashLM", None)


def test_a_models_file_inside_a_package_imports_its_siblings(tmp_path, monkeypatch):
    """The seed's Method 1: ``--models tests/conftest.py`` in a project whose tests are a package."""
    project = tmp_path / "proj"
    (project / "mytests").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'proj'\n")
    (project / "mytests" / "__init__.py").write_text("")
    (project / "mytests" / "helpers.py").write_text("BIAS = 'from-helpers'\n")
    (project / "mytests" / "conftest.py").write_text(
        "from eval_framework import BaseLLM, LoglikelihoodResult\n"
        "from mytests.helpers import BIAS\n"
        "from .helpers import BIAS as RELATIVE\n\n"
        "class Llama31_8B_Instruct_HF(BaseLLM):\n"
        "    bias = BIAS + RELATIVE\n"
        "    def loglikelihood(self, requests):\n"
        "        return [LoglikelihoodResult(-1.0, False) for _ in requests]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    cls = find_model_class("Llama31_8B_Instruct_HF", project / "mytests" / "conftest.py")
    assert cls.bias == "from-helpersfrom-helpers"


def test_a_standalone_models_file_sees_its_project_root(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    (project / "lib").mkdir(parents=True)
    (project / "scripts").mkdir()
    (project / ".git").mkdir()
    (project / "lib" / "__init__.py").write_text("NAME = 'lib-model'\n")
    (project / "scripts" / "models.py").write_text(
        "from eval_framework import BaseLLM\nfrom lib import NAME\n\nclass M(BaseLLM):\n    name = NAME\n"
        "    def generate(self, requests):\n        return ['' for _ in requests]\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert find_model_class("M", project / "scripts" / "models.py").name == "lib-model"


def test_a_subclass_of_the_embedded_model_takes_its_own_arguments(cli, tmp_path):
    models = tmp_path / "keyed.py"
    models.write_text(
        "from eval_framework.models.embedded import EmbeddedTinyLLM\n\n\n"
        "class Keyed(EmbeddedTinyLLM):\n"
        "    def __init__(self, version: str = 'latest', api_key: str = '', **kwargs):\n"
        "        super().__init__(version=version, **kwargs)\n"
        "        self._key = api_key\n"
    )
    base = ("--models", models, "--llm-name", "Keyed", "--task-name", "tiny-letters", "--num-samples", "2")
    ok = cli(*base, "--llm-args", "api_key=sk-12345678", "--output-dir", tmp_path / "out")
    assert ok.code == 0, ok.err
    wrong = cli(*base, "--llm-args", "nosuch=1", "--output-dir", tmp_path / "out")
    assert wrong.code == 2
    assert "Keyed does not accept --llm-args nosuch; use the names it accepts: api_key, version" in wrong.err
