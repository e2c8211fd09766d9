"""The ``mlflow`` export destination: each bundle as an MLflow run (``log_mode: per_task``), or
each checkpoint version's tasks in one run (``multi_task``), on a tracking server.

The run is found by a tag (the evaluation hash, or the checkpoint version's key), never only
through the ledger, so an export from another machine, or after the ledger is lost, updates the
same run. What a run holds is described in mlflow_records, how it is found and created safely
in mlflow_runs, and how the server is talked to in mlflow_conn; docs/exporters.md says it all for
users.
"""

from __future__ import annotations

import importlib
import os
import posixpath
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from eval_framework.errors import ConfigError, missing_extra
from eval_framework.results import Bundle
from eval_framework.sinks import mlflow_runs
from eval_framework.sinks.base import Exported, Status
from eval_framework.sinks.mlflow_conn import calling, client, experiment_id, location, protect, shown
from eval_framework.sinks.mlflow_records import RESERVED, Options, build
from eval_framework.sinks.mlflow_uri import checked, local_store

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

#: The experiment when neither experiment_name nor MLFLOW_EXPERIMENT_NAME says one.
DEFAULT_EXPERIMENT = "eval_framework"
_TAG_NAME = re.compile(r"^[\w\-. :/]{1,250}$")


def _tag_names(keys: list[str], what: str) -> None:
    """A key MLflow would refuse, or one of ours, is refused before anything is sent."""
    for key in keys:
        normal = posixpath.normpath(key)
        if not _TAG_NAME.match(key) or normal != key or normal.startswith(("..", "/")):
            raise ValueError(
                f"{what} key {key!r}: MLflow takes letters, digits, '_', '-', '.', ' ', ':' and '/' "
                "(not as an empty path part), at most 250 characters"
            )
        if key.startswith(RESERVED):
            raise ValueError(f"{what} key {key!r}: keys starting with {' or '.join(RESERVED)} are reserved")


class MlflowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking_uri: str | None = Field(None, description="else MLFLOW_TRACKING_URI")
    experiment_name: str | None = Field(None, min_length=1, description="else MLFLOW_EXPERIMENT_NAME")
    run_name: str | None = Field(None, min_length=1)
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    extra_metadata: dict[str, Any] = Field(default_factory=dict)
    log_metrics: tuple[str, ...] = ()
    log_artifacts: bool = True
    log_mode: Literal["per_task", "multi_task"] = "per_task"
    group: str | None = Field(None, min_length=1)

    @field_validator("tags", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        """A list of names is taken too (as in the wandb destination): tags with empty values."""
        return dict.fromkeys(value, "") if isinstance(value, list | tuple) else value

    @field_validator("tags", "extra_metadata")
    @classmethod
    def _names(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        _tag_names(list(value), str(info.field_name))
        return value

    @field_validator("tracking_uri")
    @classmethod
    def _blank(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class MlflowSink:
    """``--dest mlflow`` (see the module docstring)."""

    name: ClassVar[str] = "mlflow"
    Config: ClassVar[type[BaseModel]] = MlflowConfig

    def __init__(self, config: MlflowConfig) -> None:
        self.config = config
        self.options = Options(
            log_mode=config.log_mode,
            group=config.group,
            run_name=config.run_name,
            description=config.description,
            tags=dict(config.tags),
            extra_metadata=dict(config.extra_metadata),
            log_metrics=config.log_metrics,
            log_artifacts=config.log_artifacts,
        )
        self.experiment_name = (
            config.experiment_name
            or os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip()
            or DEFAULT_EXPERIMENT
        )
        self._client: MlflowClient | None = None
        self._experiment: str | None = None

    @property
    def uri(self) -> str:
        """The tracking URI: the config's, else MLFLOW_TRACKING_URI; one MLflow would misread
        (no scheme, say) is refused with what to write."""
        if self.config.tracking_uri:
            return checked(self.config.tracking_uri, "tracking_uri")
        uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        if not uri:
            raise ConfigError(
                "mlflow export: no tracking server given; set tracking_uri in --config (e.g. "
                """'{"tracking_uri": "http://mlflow.example:5000"}') or MLFLOW_TRACKING_URI in the """
                "environment"
            )
        return checked(uri, "MLFLOW_TRACKING_URI")

    def _mlflow(self) -> MlflowClient:
        if self._client is None:
            protect(self.uri)
            self._client = client(self.uri)
        return self._client

    def _not_yet_made(self) -> bool:
        """A local store (sqlite file, file-store folder) that does not exist yet: MLflow would
        create it on opening, so it is left alone until something is sent."""
        path = local_store(self.uri)
        if path is None or path.exists():
            return False
        if not path.absolute().parent.is_dir():
            raise ConfigError(
                f"mlflow export: the folder of {shown(self.uri)} ({path.absolute().parent}) does not "
                "exist; create it, or fix tracking_uri (or MLFLOW_TRACKING_URI)"
            )
        return True

    def preflight(self) -> None:
        """The URI is usable, the client installed, the server answers, and the experiment is
        usable (a missing one is created by the first export: nothing is created here, not even
        a local store)."""
        if self._not_yet_made():
            try:  # installed: the export will need it
                importlib.import_module("mlflow.tracking")
            except ImportError as exc:
                raise missing_extra("mlflow", "mlflow", ConfigError) from exc
            return
        mlflow = self._mlflow()
        doing = f"looking up the experiment {self.experiment_name!r}"
        with calling(self.uri, doing, preflight=True):
            self._experiment = experiment_id(mlflow, self.experiment_name, self.uri, create=False)

    def _where(self, experiment: str, run_id: str) -> str:
        uri = location(self.uri)
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
        return f"runs:/{run_id} (experiment {experiment} at {shown(self.uri)})"

    def preview(self, bundle: Bundle) -> Status:
        """What ``publish`` would do; looks the run up, sends nothing."""
        record = build(bundle, self.options)
        if self._not_yet_made():  # nothing exists yet: every run would be created
            return "created"
        mlflow = self._mlflow()
        with calling(self.uri, f"looking up the run of {bundle.dir.name}"):
            experiment = self._experiment or experiment_id(
                mlflow, self.experiment_name, self.uri, create=False
            )
            runs = mlflow_runs.find(mlflow, experiment, record) if experiment else []
            return mlflow_runs.status(runs[0] if runs else None, record)

    def publish(self, bundle: Bundle, force: bool = False) -> Exported:
        record = build(bundle, self.options)
        mlflow = self._mlflow()
        with calling(self.uri, f"sending to the experiment {self.experiment_name!r}"):
            if self._experiment is None:
                self._experiment = experiment_id(mlflow, self.experiment_name, self.uri, create=True)
            assert self._experiment is not None  # created when missing
            status, run = mlflow_runs.publish(mlflow, self._experiment, record, force)
        return Exported(self.name, bundle.dir, status, self._where(self._experiment, run.info.run_id))
