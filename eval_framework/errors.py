"""One exception tree for everything a user can see.

    EvalFrameworkError            exit 1   base; `str(err)` is the one line the CLI prints
    ├── ConfigError               exit 2   bad flags, --llm-args, .env or config file
    │   └── TaskDefinitionError   exit 2   malformed task YAML (names the field)
    ├── ModelError                exit 3   --models file, class lookup, model load, backend failures
    ├── TaskError                 exit 4   unknown task, few-shot pool too small, bad data rows
    │   └── DatasetUnavailableError        dataset not reachable (offline, no cache)
    ├── OutputError               exit 5   output directory not writable, bundle locked, disk full
    ├── RegistryError             exit 6   W&B registry lookups and checkpoint downloads
    │   ├── ArtifactWaitTimeout            a '-local' twin's upload did not appear in time
    │   └── DownloadError                  a file could not be fetched or did not verify
    └── ExportError               exit 7   the evaluation finished, logging/uploading it did not
        ├── WandbLogError                  W&B logging
        └── HfUploadError                  the Hugging Face upload

Every message says what failed, why, and what to do. SDK exceptions are translated at the
boundary with ``raise ... from exc`` so the traceback (``-v``) keeps the cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class EvalFrameworkError(Exception):
    exit_code = 1


class ConfigError(EvalFrameworkError):
    exit_code = 2


class TaskDefinitionError(ConfigError):
    pass


class ModelError(EvalFrameworkError):
    exit_code = 3


class TaskError(EvalFrameworkError):
    exit_code = 4


class DatasetUnavailableError(TaskError):
    pass


class OutputError(EvalFrameworkError):
    exit_code = 5


class RegistryError(EvalFrameworkError):
    exit_code = 6


class ArtifactWaitTimeout(RegistryError):
    pass


class DownloadError(RegistryError):
    """A checkpoint file could not be fetched or did not verify."""


class ExportError(EvalFrameworkError):
    """The bundle is complete; a sink (W&B, Hugging Face) did not take it. Its parts are fields, and
    its one line is made from them (callers combine failures by their fields, never by their text).

    One sink's failure: ``sink`` ("W&B", "Hugging Face"), ``what`` did not happen (empty when ``why``
    names it itself), ``why``, ``hint`` (what to do), whether it failed ``retried``, and for W&B what
    was ``logged`` before it. Several failures gathered (one command's exports): ``failures``, the
    ``bundle`` they are about (None: the command's evaluations) and the ``command`` that finishes
    the export.
    """

    exit_code = 7

    def __init__(  # noqa: PLR0913  (an error record's fields, keyword-only)
        self,
        why: str = "",
        *,
        sink: str = "",
        what: str = "",
        hint: str = "",
        retried: bool = False,
        logged: tuple[str, ...] | None = None,
        failures: Sequence[ExportError] = (),
        bundle: Path | None = None,
        command: str = "",
    ) -> None:
        self.sink, self.what, self.why, self.hint = sink, what, why, hint
        self.retried, self.logged = retried, logged
        self.failures = tuple(failures)  #: empty: this error is one failure
        self.bundle, self.command = bundle, command
        super().__init__(self._line())

    @classmethod
    def gathered(
        cls, failures: Sequence[ExportError], command: str, bundle: Path | None = None
    ) -> ExportError:
        """One error for several failures (each error's own ones), with the command that finishes."""
        leaves = tuple(leaf for exc in failures for leaf in exc.failures or (exc,))
        return cls(failures=leaves, bundle=bundle, command=command)

    def problem(self) -> str:
        """What failed and why, without where the results are and how to finish."""
        if self.failures:
            return "; ".join(f.problem() for f in self.failures)
        text = self.why
        if self.what:
            text = f"{self.what} failed{' after retries' if self.retried else ''}: {self.why}"
        if self.hint:
            text += f"; {self.hint}"
        if self.logged is not None:
            text += f" (logged before that: {', '.join(self.logged) or 'nothing'})"
        return text

    def _line(self) -> str:
        if not self.command:
            return self.problem()
        done = (
            f"The evaluation itself is complete in {self.bundle}"
            if self.bundle is not None
            else "The evaluations themselves are complete"
        )
        return f"{self.problem()}. {done}; finish the export with: {self.command}"


class WandbLogError(ExportError):
    """The evaluation finished but W&B logging did not."""


class HfUploadError(ExportError):
    """The evaluation finished but the Hugging Face upload did not."""


def missing_extra(
    package: str, extra: str, error: type[EvalFrameworkError] = ModelError
) -> EvalFrameworkError:
    """Error for an optional dependency that is not installed (a model's by default; sinks and
    data readers pass their own class so the exit code says which part is missing it)."""
    return error(
        f"the optional dependency '{package}' is not installed; "
        f"install it with: pip install 'eval_framework[{extra}]'"
    )


def brief(exc: BaseException, limit: int = 300, with_type: bool = False) -> str:
    """Another library's exception text made fit for a one-line message: secrets scrubbed first (a
    cut could hide a secret from the scrubber), whitespace and newlines collapsed, its middle cut out
    beyond ``limit`` characters; the type name when the text says nothing."""
    from eval_framework.redact import scrub  # redact is light, but errors is imported by everything

    text = " ".join(scrub(str(exc)).split())
    if len(text) > limit:  # head and tail: the last words of a long error are often its cause
        half = (limit - 3) // 2
        text = f"{text[:half].rstrip()} … {text[-half:].lstrip()}"
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text}" if with_type else text
