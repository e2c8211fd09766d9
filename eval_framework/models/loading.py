"""Turn ``--models``/``--llm-name``/``--llm-args`` into a model instance."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import logging
import sys
from pathlib import Path
from typing import Any

from eval_framework.errors import ConfigError, EvalFrameworkError, ModelError
from eval_framework.models.base import BaseLLM

log = logging.getLogger(__name__)

#: Built-in backend names -> "module:Class" (imported lazily: torch stays optional).
BUILTIN_BACKENDS: dict[str, str] = {
    "hf": "eval_framework.models.huggingface:HuggingFaceLLM",
    "huggingface": "eval_framework.models.huggingface:HuggingFaceLLM",
    "openai": "eval_framework.models.openai_compat:OpenAICompatibleLLM",
    "openai-compatible": "eval_framework.models.openai_compat:OpenAICompatibleLLM",
    "embedded": "eval_framework.models.embedded:EmbeddedTinyLLM",
}


def _is_model_class(obj: Any) -> bool:
    if not inspect.isclass(obj) or inspect.isabstract(obj):
        return False
    if issubclass(obj, BaseLLM):
        return obj is not BaseLLM
    return callable(getattr(obj, "loglikelihood", None)) or callable(getattr(obj, "generate", None))


def import_models_file(path: Path) -> Any:
    """Import a user's Python file under a unique module name."""
    if not path.is_file():
        raise ModelError(f"--models file {path} does not exist; pass the path of a Python file")
    if path.suffix != ".py":
        raise ModelError(f"--models file {path} is not a .py file")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"eval_framework_user_models_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"--models file {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except OSError as exc:
        sys.modules.pop(module_name, None)
        raise ModelError(f"cannot read --models file {path}: {exc.strerror}") from exc
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ModelError(
            f"importing --models file {path} failed: {type(exc).__name__}: {exc}; fix the file and retry"
        ) from exc
    return module


def _class_from_dotted(dotted: str) -> type:
    module_name, sep, attr = dotted.partition(":")
    if not sep:
        module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"cannot import module {module_name!r} for --llm-name {dotted}: {exc}") from exc
    cls = getattr(module, attr, None)
    if cls is None or not _is_model_class(cls):
        raise ModelError(f"{dotted} is not a model class (needs loglikelihood and/or generate methods)")
    return cls


def find_model_class(llm_name: str, models_file: Path | None) -> type:
    """Look ``llm_name`` up in the models file, then built-in names, then as a dotted path."""
    if models_file is not None:
        module = import_models_file(models_file)
        found: dict[str, type] = {
            name: obj
            for name, obj in vars(module).items()
            if _is_model_class(obj) and not name.startswith("_")
        }
        if llm_name in found:
            return found[llm_name]
        if llm_name not in BUILTIN_BACKENDS and "." not in llm_name and ":" not in llm_name:
            close = difflib.get_close_matches(llm_name, found, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            # List the file's own classes; imported base classes are noise here.
            own = [n for n, c in found.items() if c.__module__ == module.__name__] or list(found)
            listing = ", ".join(sorted(own)) or "none"
            raise ModelError(f"class {llm_name!r} not found in {models_file}{hint}; classes found: {listing}")
    if llm_name in BUILTIN_BACKENDS:
        return _class_from_dotted(BUILTIN_BACKENDS[llm_name])
    if "." in llm_name or ":" in llm_name:
        return _class_from_dotted(llm_name)
    close = difflib.get_close_matches(llm_name, BUILTIN_BACKENDS, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ModelError(
        f"unknown --llm-name {llm_name!r}{hint}; use a built-in backend ({', '.join(BUILTIN_BACKENDS)}), "
        "a dotted import path, or a class in the file given with --models"
    )


def instantiate(cls: type, llm_args: dict[str, Any], batch_size: int) -> Any:
    """Build the model; pass batch_size when the constructor takes it and it was not given."""
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = dict(llm_args)
    if "batch_size" not in kwargs and ("batch_size" in params or takes_any):
        kwargs["batch_size"] = batch_size
    unknown = [k for k in kwargs if k not in params and not takes_any]
    if unknown:
        accepted = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        raise ConfigError(
            f"{cls.__name__} does not accept --llm-args {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    try:
        return cls(**kwargs)
    except EvalFrameworkError:
        raise
    except TypeError as exc:
        raise ConfigError(f"cannot construct {cls.__name__} from --llm-args: {exc}") from exc
    except Exception as exc:
        raise ModelError(f"loading model {cls.__name__} failed: {type(exc).__name__}: {exc}") from exc


def load_model(llm_name: str, models_file: Path | None, llm_args: dict[str, Any], batch_size: int) -> Any:
    cls = find_model_class(llm_name, models_file)
    log.info("loading model %s (%s)", llm_name, cls.__qualname__)
    return instantiate(cls, llm_args, batch_size)
