"""eval.log: the run's own log inside its bundle, scrubbed of secrets, with the whole failure."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eval_framework.errors import brief
from eval_framework.redact import ScrubFilter, scrub


class _BundleLogHandler(logging.FileHandler):
    """eval.log; a failed write (disk full) must not print logging's own traceback: the next bundle
    write reports the problem as one line."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass

    def close(self) -> None:
        with contextlib.suppress(OSError):  # what a full disk left unflushed is lost, quietly
            super().close()


class _ScrubbingFormatter(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return scrub(super().formatException(ei))


@contextmanager
def bundle_log(path: Path) -> Iterator[None]:
    handler = _BundleLogHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(_ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ScrubFilter())
    # On the root logger: a model's own warnings (user code, transformers) are the run's log too,
    # scrubbed like ours; eval_framework's own records from INFO up.
    ours, root = logging.getLogger("eval_framework"), logging.getLogger()
    root.addHandler(handler)
    previous = ours.level
    if ours.level == logging.NOTSET or ours.level > logging.INFO:
        ours.setLevel(logging.INFO)
    try:
        yield
    except Exception as exc:
        # The whole failure, traceback and cause included, in the run's own log only: the console
        # gets the one line (the traceback with -v).
        why = (brief(exc, with_type=True),)
        record = ours.makeRecord(
            ours.name,
            logging.ERROR,
            __file__,
            0,
            "the evaluation stopped: %s",
            why,
            (type(exc), exc, exc.__traceback__),
        )
        handler.handle(record)
        raise
    finally:
        root.removeHandler(handler)
        ours.setLevel(previous)
        handler.close()
