"""Where checkpoint downloads report their progress.

Library code never draws: a download reports to a ``DownloadBar`` that a process-wide factory
opens. The default factory is silent; the command line installs one that draws a bar (see
``eval_framework.reporting.download_bar``), so evaluations and ``resolve`` show progress without
every caller (the model backends) passing a callback down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class DownloadBar(Protocol):
    """Receives a download's total once it is planned, then byte increments (from worker threads)."""

    def start(self, total: int) -> None:
        """``total``: the bytes still to fetch (files already present and verified are left out)."""
        ...

    def advance(self, nbytes: int) -> None: ...


#: Opens a bar for one download, named by ``description``; closing it removes the bar.
DownloadBarFactory = Callable[[str], AbstractContextManager[DownloadBar]]


class _Silent:
    def start(self, total: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass


@contextmanager
def silent(description: str) -> Iterator[DownloadBar]:
    """The default: reports go nowhere (library use, tests, scripts)."""
    yield _Silent()


_factory: DownloadBarFactory = silent


def set_download_bar_factory(factory: DownloadBarFactory | None) -> None:
    """Install the factory downloads use from now on in this process (None: back to silent)."""
    global _factory
    _factory = factory or silent


def download_bar(description: str) -> AbstractContextManager[DownloadBar]:
    """A bar from the installed factory."""
    return _factory(description)
