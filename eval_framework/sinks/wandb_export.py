"""The ``wandb`` export destination: each bundle logged as its own run (``log_mode: per_task``),
exactly as live logging and ``upload`` log it, with the keys of an exporter config on top; or
every task of a checkpoint version in one run (``log_mode: multi_task``, ``wandb_multi_task``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from eval_framework.errors import ConfigError
from eval_framework.results import Bundle
from eval_framework.sinks import ledger
from eval_framework.sinks.base import Exported, Status
from eval_framework.sinks.wandb_mode import choose_mode
from eval_framework.sinks.wandb_multi_task import MultiTaskExport
from eval_framework.sinks.wandb_sink import _wandb, log_bundle, records_digest, unsynced_offline_log
from eval_framework.sinks.wandb_spec import Mode, WandbOptions, build_spec


class WandbConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(pattern=r"^[^/\\#?%:]{1,128}$")
    entity: str | None = Field(None, pattern=r"^[^/\\#?%:]{1,128}$")
    name: str | None = None
    group: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    job_type: str | None = None
    log_mode: Literal["per_task", "multi_task"] = "per_task"
    log_metrics: tuple[str, ...] = ()
    log_artifacts: bool = True
    extra_metadata: dict[str, Any] = Field(default_factory=dict)
    mode: Mode | None = None  #: online when WANDB_API_KEY is set, else offline
    registry: str | None = None
    #: multi_task: where this machine keeps a lock per run and the tasks it exported to each run
    state_dir: str | None = None


class WandbSink:
    """``--dest wandb``: one run per evaluation, grouped by checkpoint version (see docs/logging.md),
    or one run per checkpoint version holding all its tasks (``log_mode: multi_task``)."""

    name: ClassVar[str] = "wandb"
    Config: ClassVar[type[BaseModel]] = WandbConfig

    def __init__(self, config: WandbConfig) -> None:
        self.multi_task = config.log_mode == "multi_task"
        self.state_dir = config.state_dir
        self.options = WandbOptions(
            project=config.project,
            entity=config.entity,
            group=config.group,
            tags=config.tags,
            mode=config.mode,
            upload_results=config.log_artifacts,
            registry=config.registry,
            name=config.name,
            notes=config.description,
            job_type=config.job_type,
            extra_config=dict(config.extra_metadata),
            log_metrics=config.log_metrics,
        )

    def preflight(self) -> None:
        mode, _ = choose_mode(self.options)  # a bad WANDB_MODE is refused here
        if mode == "disabled":  # the SDK would accept every call and keep nothing
            if self.options.mode:
                source, fix = '"mode": "disabled" in --config', 'set "mode" to "online" or "offline"'
            else:
                source, fix = (
                    "WANDB_MODE=disabled (environment or .env)",
                    "unset WANDB_MODE (or set it to online or offline)",
                )
            raise ConfigError(
                f"wandb export: W&B is disabled ({source}), so nothing would be exported; {fix}, "
                "or leave out --dest wandb"
            )
        _wandb()  # the extra is installed

    def _status(self, bundle: Bundle, force: bool) -> Status:
        """unchanged: this very log is in W&B (online) or waits for ``wandb sync`` (offline)."""
        spec = build_spec(bundle, self.options)
        records = records_digest(spec, self.options)
        mode, _ = choose_mode(self.options)
        if mode == "offline" and unsynced_offline_log(bundle, records) is not None:
            return "unchanged"  # even with force: a second offline copy would only be synced twice
        if (
            not force
            and mode == "online"
            and ledger.last(bundle.dir, "wandb", status="logged", records=records)
        ):
            return "unchanged"
        before = [
            ledger.last(bundle.dir, "wandb", run_id=spec.run_id, project=spec.project, status=s)
            for s in ("logged", "offline")
        ]
        return "updated" if any(before) else "created"

    def preview(self, bundle: Bundle) -> Status:
        if self.multi_task:
            return MultiTaskExport(bundle, self.options, self.state_dir).preview()
        return self._status(bundle, force=False)

    def publish(self, bundle: Bundle, force: bool = False) -> Exported:
        if self.multi_task:
            status, where = MultiTaskExport(bundle, self.options, self.state_dir).publish(force)
            return Exported(self.name, bundle.dir, status, where)
        status = self._status(bundle, force)
        if status == "unchanged":
            spec = build_spec(bundle, self.options)
            return Exported(self.name, bundle.dir, status, spec.run_id)
        report = log_bundle(bundle.dir, self.options)
        # online: the run's page; offline: the command that sends it
        where = report.url or report.sync_command or report.run_id
        return Exported(self.name, bundle.dir, status, where)
