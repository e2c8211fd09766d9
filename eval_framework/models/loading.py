"""Turn ``--models``/``--llm-name``/``--llm-args`` into a model class, checked arguments, an
identity, and finally an instance.

Arguments are checked against the constructor (names and annotated types) before anything is
created, so ``batch_size=abc`` is refused naming the argument and its type, not after a bundle
directory was made.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import io
import logging
import sys
import types
import typing
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, cast

from pydantic import ConfigDict, TypeAdapter, ValidationError

from eval_framework import cleanup
from eval_framework.errors import ConfigError, EvalFrameworkError, ModelError, brief
from eval_framework.models.arg_identity import identity_args
from eval_framework.models.auto_batch import FIXED_FALLBACK, BatchSizeSetting
from eval_framework.models.base import BaseLLM
from eval_framework.redact import redact

log = logging.getLogger(__name__)

#: Built-in backend names -> "module:Class" (imported lazily: torch stays optional).
BUILTIN_BACKENDS: dict[str, str] = {
    "hf": "eval_framework.models.huggingface:HuggingFaceLLM",
    "huggingface": "eval_framework.models.huggingface:HuggingFaceLLM",
    "openai": "eval_framework.models.openai_compat:OpenAICompatibleLLM",
    "openai-compatible": "eval_framework.models.openai_compat:OpenAICompatibleLLM",
    "embedded": "eval_framework.models.embedded:EmbeddedTinyLLM",
}
_WHAT_LLM_NAME_TAKES = (
    "--llm-name takes a class in the --models file, a built-in backend "
    f"({', '.join(BUILTIN_BACKENDS)}), or an importable path like package.module:Class; pass one of those"
)
#: Files that mark a project root: a models file's imports are resolved from there too.
_PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def _is_model_class(obj: Any) -> bool:
    if not inspect.isclass(obj) or inspect.isabstract(obj):
        return False
    if issubclass(obj, BaseLLM):
        return obj is not BaseLLM
    return callable(getattr(obj, "loglikelihood", None)) or callable(getattr(obj, "generate", None))


def _why_not_a_model(obj: Any) -> str:
    if not inspect.isclass(obj):
        return f"not a model class: it is a {type(obj).__name__}; use a model class"
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ()))) or "some methods"
        return f"not a model class: it is abstract ({missing} not implemented); use a concrete subclass"
    return (
        "not a model class: it has no loglikelihood() or generate() method; use a class that has them "
        "(subclass eval_framework.BaseLLM)"
    )


def _package_root(directory: Path) -> Path | None:
    """The directory above the outermost package holding ``directory`` (None: not in a package)."""
    if not (directory / "__init__.py").is_file():
        return None
    root = directory
    while (root.parent / "__init__.py").is_file() and root.parent != root:
        root = root.parent
    return root.parent


def _project_root(directory: Path) -> Path:
    for candidate in (directory, *directory.parents):
        if any((candidate / marker).exists() for marker in _PROJECT_MARKERS):
            return candidate
    return Path.cwd().resolve()


def _module_name(path: Path) -> str:
    """The dotted name a file has inside its package (``tests.conftest``), or a unique one."""
    root = _package_root(path.parent)
    if root is not None:
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts)
        existing = sys.modules.get(name)
        same_file = existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == path
        if existing is None or same_file:
            return name
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return f"eval_framework_user_models_{digest}"


def import_models_file(path: Path) -> Any:
    """Import a user's Python file the way the user expects: inside its package when it is in one
    (so ``from tests.helpers import x`` and relative imports work), with its directory and its
    project root importable."""
    if path.is_dir():
        raise ModelError(f"--models {path} is a directory; pass the path of a Python file in it")
    if not path.is_file():
        raise ModelError(f"--models file {path} does not exist; pass the path of a Python file")
    if path.suffix != ".py":
        raise ModelError(f"--models file {path} is not a .py file; pass the path of a Python file")
    path = path.resolve()
    root = _package_root(path.parent)
    for entry in dict.fromkeys([root or path.parent, _project_root(path.parent)]):
        if str(entry) not in sys.path:
            sys.path.insert(0, str(entry))
    module_name = _module_name(path)
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"--models file {path} cannot be imported; check that it is a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    printed = io.StringIO()  # held back: argparse at module level prints its usage, then exits
    try:
        with contextlib.redirect_stderr(printed):
            spec.loader.exec_module(module)
    except OSError as exc:
        sys.modules.pop(module_name, None)
        raise ModelError(f"cannot read --models file {path}: {exc.strerror}; check its permissions") from exc
    except SystemExit as exc:  # argparse or sys.exit() at module level
        sys.modules.pop(module_name, None)
        said = printed.getvalue().strip().splitlines()
        raise ModelError(
            f"--models file {path} called sys.exit({exc.code}) while being imported (argparse at module "
            f"level?{' It printed: ' + said[-1] if said else ''}); move that under "
            '`if __name__ == "__main__":` and retry'
        ) from exc
    except Exception as exc:  # whatever the file's own code raises: said as a model error
        sys.modules.pop(module_name, None)
        sys.stderr.write(printed.getvalue())
        if isinstance(exc, SyntaxError):
            where = f"{exc.filename}:{exc.lineno}"
            why = f"--models file {where} has a syntax error ({exc.msg}); fix it and retry"
        else:
            why = (
                f"importing --models file {path} failed: {brief(exc, with_type=True)}; fix the file (or "
                "install what it imports) and retry"
            )
        raise ModelError(why) from exc
    sys.stderr.write(printed.getvalue())  # what the file printed on its own stays visible
    return module


def _class_from_dotted(dotted: str) -> type:
    module_name, sep, attr = dotted.partition(":")
    if not sep:
        module_name, _, attr = dotted.rpartition(".")
    if not module_name or not attr:
        raise ModelError(f"--llm-name {dotted!r} is not a class path; {_WHAT_LLM_NAME_TAKES}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(
            f"cannot import module {module_name!r} for --llm-name {dotted} ({brief(exc)}); "
            f"{_WHAT_LLM_NAME_TAKES}: "
            "is its package installed in this environment?"
        ) from exc
    except Exception as exc:
        raise ModelError(
            f"importing {module_name!r} for --llm-name {dotted} failed: {brief(exc, with_type=True)}; "
            "fix the module or what it imports"
        ) from exc
    if not hasattr(module, attr):
        close = difflib.get_close_matches(attr, [n for n in vars(module) if not n.startswith("_")], n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ModelError(f"module {module_name!r} has no {attr!r}{hint}; check --llm-name {dotted}")
    cls = getattr(module, attr)
    if not _is_model_class(cls):
        raise ModelError(f"--llm-name {dotted} is {_why_not_a_model(cls)}")
    return cast(type, cls)


def find_model_class(llm_name: str, models_file: Path | None) -> type:
    """Look ``llm_name`` up in the models file, then built-in names, then as a dotted path."""
    if models_file is not None:
        module = import_models_file(models_file)
        defined = {name: obj for name, obj in vars(module).items() if not name.startswith("_")}
        found: dict[str, type] = {name: obj for name, obj in defined.items() if _is_model_class(obj)}
        if llm_name in found:
            return found[llm_name]
        if llm_name in defined:
            raise ModelError(f"{llm_name} in {models_file} is {_why_not_a_model(defined[llm_name])}")
        if llm_name not in BUILTIN_BACKENDS and "." not in llm_name and ":" not in llm_name:
            close = difflib.get_close_matches(llm_name, found, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            # List the file's own classes; imported base classes are noise here.
            own = [n for n, c in found.items() if c.__module__ == module.__name__] or list(found)
            listing = ", ".join(sorted(own)) or "none"
            raise ModelError(
                f"class {llm_name!r} not found in {models_file}{hint}; "
                f"use one of the model classes there: {listing}"
            )
    if llm_name in BUILTIN_BACKENDS:
        return _class_from_dotted(BUILTIN_BACKENDS[llm_name])
    if "." in llm_name or ":" in llm_name:
        return _class_from_dotted(llm_name)
    close = difflib.get_close_matches(llm_name, BUILTIN_BACKENDS, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ModelError(f"unknown --llm-name {llm_name!r}{hint}; {_WHAT_LLM_NAME_TAKES}")


# Arguments ---------------------------------------------------------------------------------------
_LENIENT = ConfigDict(coerce_numbers_to_str=True)  # `--llm-args revision=2024` means the text "2024"


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        init = next(k.__dict__["__init__"] for k in cls.__mro__ if "__init__" in k.__dict__)
        return typing.get_type_hints(init)
    except Exception:  # unresolvable annotations: names are still checked, types are not  # noqa: BLE001
        return {}


def _type_name(annotation: Any) -> str:
    """A type as a user reads it: ``int or 'auto'``, not ``Union[int, Literal['auto']]``."""
    if isinstance(annotation, type):
        return annotation.__name__
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    return str(annotation).replace("typing.", "")


def _what_to_pass(annotation: Any) -> str:
    """The fix, in the words a user types: ``true or false`` for a flag, else the type."""
    options = set(typing.get_args(annotation)) or {annotation}
    if bool in options:
        unset = " (or leave it out for the default)" if type(None) in options else ""
        return f"pass true or false{unset}"
    return "pass a value of that type"


def check_llm_args(cls: type, llm_args: dict[str, Any]) -> dict[str, Any]:
    """``llm_args`` checked against ``cls``'s constructor: unknown names and values of the wrong
    type are refused naming the argument; values come back converted to the annotated types. Then
    the class's own ``validate_args`` (if any) checks what types cannot (a dtype name, a version)."""
    checked = check_signature(cls, llm_args)
    validate = getattr(cls, "validate_args", None)
    if callable(validate):
        validate(checked)
    return checked


def check_signature(
    cls: type,
    llm_args: dict[str, Any],
    owner: str | None = None,
    hidden: Collection[str] = (),
    own: Sequence[str] = (),
) -> dict[str, Any]:
    """The name and type part of ``check_llm_args``. When ``owner`` (the class the user chose)
    passes its arguments on to ``cls``: ``hidden`` names parameters of ``cls`` the owner does not
    take, ``own`` the owner's own parameters (listed among the names it accepts)."""
    owner = owner or cls.__name__
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return dict(llm_args)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {
        n: p for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n not in hidden
    }
    unknown = [k for k in llm_args if k not in named and not takes_any]
    if unknown:
        accepted = [*own, *named]
        close = difflib.get_close_matches(unknown[0], accepted, n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(
            f"{owner} does not accept --llm-args {', '.join(unknown)}{hint}; "
            f"use the names it accepts: {', '.join(accepted) or 'none'}"
        )
    hints = _type_hints(cls)
    checked = dict(llm_args)
    for name, value in llm_args.items():
        annotation = hints.get(name)
        if annotation is None or annotation is Any:
            continue
        try:
            converted = TypeAdapter(annotation, config=_LENIENT).validate_python(value)
            if isinstance(value, bool) and not isinstance(converted, bool):  # true is not a number
                TypeAdapter(annotation, config=ConfigDict(strict=True)).validate_python(value)
            checked[name] = converted
        except ValidationError as exc:
            shown = redact({name: value})[name]
            raise ConfigError(
                f"invalid --llm-args {name}={shown!r} for {owner}: expected {_type_name(annotation)} "
                f"({exc.errors()[0]['msg'].lower()}); {_what_to_pass(annotation)}"
            ) from exc
        except Exception:  # an annotation pydantic cannot check (a user's own class): leave it  # noqa: BLE001
            continue
    return checked


def model_identity(cls: type, llm_args: dict[str, Any]) -> dict[str, Any]:
    """What identifies a model's outputs, computed before loading it."""
    if hasattr(cls, "result_identity"):
        identity = dict(cls.result_identity(llm_args))
    else:
        identity = {"class": cls.__qualname__, "args": identity_args(cls, llm_args)}
    source = class_source_digest(cls)
    if source is not None:
        identity["source_sha256"] = source
    return identity


def class_source_digest(cls: type) -> str | None:
    """sha256 of the source files that define a user's model class and its user-written bases:
    editing the class, or a helper function beside it, changes its results' identity. (Code those
    files import from elsewhere is not followed.) eval_framework's own classes are versioned by it."""
    files: dict[str, None] = {}
    for klass in cls.__mro__:
        module = getattr(klass, "__module__", "") or ""
        if module == "builtins" or module.split(".")[0] == "eval_framework":
            continue
        try:
            source = inspect.getsourcefile(klass)
        except (OSError, TypeError):
            continue
        if source:
            files[str(Path(source).resolve())] = None
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        try:
            digest.update(Path(path).read_bytes())
        except OSError:
            continue
    return digest.hexdigest()


def instantiate(cls: type, llm_args: dict[str, Any], batch_size: BatchSizeSetting) -> Any:
    """Build the model from checked arguments; batch_size is passed when the constructor takes it
    and it was not given. ``auto`` goes only to models that size their own batches
    (``sizes_own_batches``); others get ``FIXED_FALLBACK``, said once."""
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = dict(llm_args)
    if "batch_size" not in kwargs and ("batch_size" in params or takes_any):
        if batch_size == "auto" and not getattr(cls, "sizes_own_batches", False):
            log.warning(
                "%s does not size its own batches; --batch-size auto means %d for it",
                cls.__name__,
                FIXED_FALLBACK,
            )
            batch_size = FIXED_FALLBACK
        kwargs["batch_size"] = batch_size
    log.info("loading model %s", cls.__qualname__)
    try:
        return cls(**kwargs)
    except EvalFrameworkError:
        raise
    except SystemExit as exc:
        if cleanup.stopping.is_set():  # our own SIGTERM handling
            raise
        raise ModelError(
            f"{cls.__name__}() called sys.exit({exc.code}) while loading; raise an exception instead"
        ) from exc
    except TypeError as exc:
        raise ConfigError(
            f"cannot construct {cls.__name__} from --llm-args: {brief(exc)}; check the --llm-args"
        ) from exc
    except Exception as exc:
        raise ModelError(
            f"loading model {cls.__name__} failed: {brief(exc, with_type=True)}; "
            "check its files and --llm-args (-v shows the traceback)"
        ) from exc


def load_model(
    llm_name: str, models_file: Path | None, llm_args: dict[str, Any], batch_size: BatchSizeSetting
) -> Any:
    cls = find_model_class(llm_name, models_file)
    return instantiate(cls, check_llm_args(cls, llm_args), batch_size)
