"""Which tracking URIs the ``mlflow`` destination takes, checked before MLflow sees them.

MLflow reads a value without a scheme (``127.0.0.1:5055``, ``localhost:5000``) as a local
folder and answers with its file store's "maintenance mode" error, which does not say that a
scheme is missing; such a value is refused here with what to write instead. A local store (a
``sqlite:`` database file, or a ``file:`` folder where MLflow allows one) is created by MLflow as
soon as a client opens it, so ``local_store`` tells the sink where it lives: a dry run then
leaves a missing one uncreated.
"""

from __future__ import annotations

import os
import re
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit

from eval_framework.errors import ConfigError

#: Schemes MLflow's client serves from a server: its REST API, or Databricks.
REMOTE = ("http", "https", "databricks")
#: Database backends MLflow opens itself (``sqlite+pysqlite`` etc. included).
DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
_HOST = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d+)?(/\S*)?")
_PORT_ONLY = re.compile(r"\d+(/\S*)?")
_TRUE = ("true", "1")


def _hint(value: str) -> str:
    """What to write for a tracking server: the value with http:// when it reads as host[:port]."""
    match = _HOST.fullmatch(value)
    if match and (match.group(2) or "." in value.split(":")[0] or value.startswith("localhost")):
        return f"http://{value}"
    return "http://host:5000"


def _plugin_schemes() -> set[str]:
    """Schemes an installed MLflow plugin registers for its tracking store."""
    return {entry.name for entry in entry_points(group="mlflow.tracking_store")}


def checked(uri: str, source: str) -> str:
    """``uri`` when MLflow serves it as meant; else a ConfigError naming ``source`` (the key or
    variable it came from) and what to write."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if uri in ("databricks", "databricks-uc") or scheme.split("+")[0] in (*REMOTE, *DATABASES):
        if uri == "databricks-uc" or (scheme in ("http", "https") and not parts.netloc):
            raise ConfigError(
                f"mlflow export: {source} {uri!r} is not a tracking server's address; write "
                "http://host:port (or https://), e.g. http://127.0.0.1:5000"
            )
        return uri
    if scheme == "file":
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in _TRUE:
            return uri
        raise ConfigError(
            f"mlflow export: {source} {uri!r} is MLflow's file store, which MLflow refuses unless "
            "MLFLOW_ALLOW_FILE_STORE=true; give a tracking server (http://host:5000) or a database "
            "file (sqlite:///mlflow.db), or set MLFLOW_ALLOW_FILE_STORE=true"
        )
    if scheme and scheme in _plugin_schemes():
        return uri
    if not scheme or _PORT_ONLY.fullmatch(parts.path):  # 'localhost:5000' reads as scheme 'localhost'
        raise ConfigError(
            f"mlflow export: {source} {uri!r} has no scheme, so MLflow would take it for a local "
            f"folder; for a tracking server write {_hint(uri)} (https:// for TLS), for a local "
            "database write sqlite:///<path>.db"
        )
    raise ConfigError(
        f"mlflow export: {source} {uri!r} has a scheme MLflow does not serve ({parts.scheme}:); write "
        "http://host:port or https://host:port (a tracking server), databricks, or a database URI "
        "(sqlite:///<path>.db, postgresql://...)"
    )


def local_store(uri: str) -> Path | None:
    """The file (sqlite) or folder (file store) a local store lives in; None for a server, a
    remote database or an in-memory one."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme.split("+")[0] == "sqlite":
        # sqlite:///relative.db, sqlite:////absolute.db; sqlite:// and :memory: are in memory
        path = uri.split("?", 1)[0].partition(":///")[2]
        return Path(path) if path and path != ":memory:" else None
    if scheme == "file":
        return Path(parts.path) if parts.path else None
    return None
