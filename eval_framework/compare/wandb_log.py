"""``compare --wandb-project P``: the comparison as one W&B run in the collection's group.

The run holds a table of every version, task and metric (means, and the paired test against the
baseline) and a line chart per task and metric across versions. Its id is derived from what was
compared and how, so running the same comparison again updates one run. Offline (no key, or
``--wandb-mode offline``) it is written under ``<output-dir>/comparisons`` for ``wandb sync``;
bundles are never written to.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_framework import cleanup
from eval_framework.bundle_io import canonical_json
from eval_framework.compare.build import Comparison
from eval_framework.errors import ConfigError, WandbLogError, brief, missing_extra
from eval_framework.sinks.wandb_spec import Mode, WandbOptions

TABLE_COLUMNS = [
    "version", "version_index", "task", "metric", "mean", "stderr", "n", "baseline", "difference",
    "ci_low", "ci_high", "p_value", "test", "n_shared",
]  # fmt: skip
CHART_COLUMNS = ["version_index", "version", "mean", "ci_low", "ci_high"]


@dataclass(frozen=True)
class CompareLog:
    run_id: str
    mode: Mode
    url: str | None = None
    offline_dir: Path | None = None

    @property
    def sync_command(self) -> str | None:
        return f"wandb sync {shlex.quote(str(self.offline_dir))}" if self.offline_dir else None


def group_of(comparison: Comparison) -> str:
    """The collection's group when every version is of one checkpoint collection, else 'compare'."""
    names = {v.checkpoint for v in comparison.versions if v.version is not None}
    if len(names) == 1 and all(v.version is not None for v in comparison.versions):
        return names.pop()
    return "compare"


def run_id_of(comparison: Comparison, project: str) -> str:
    """Same bundles, baseline and settings: same run."""
    what = {
        "project": project,
        "bundles": sorted(str(e.bundle) for e in comparison.cells.values()),
        "baseline": comparison.baseline,
        "confidence": comparison.confidence,
        "bootstrap": [comparison.seed, comparison.resamples],
    }
    return "compare-" + hashlib.sha256(canonical_json(what).encode()).hexdigest()[:24]


def table_rows(comparison: Comparison) -> list[list[Any]]:
    rows = []
    for index, label in enumerate(comparison.labels):
        for task in comparison.tasks:
            evaluation = comparison.cell(label, task)
            if evaluation is None:
                continue
            for metric, stats in evaluation.metrics.items():
                test = comparison.find(label, task, metric)
                result = test.result if test else None
                mean = stats.mean if isinstance(stats.mean, float | int) else None
                rows.append([
                    label, index, task, metric, mean, stats.stderr, stats.n, test.baseline if test else None,
                    result.difference if result else (test.mean_difference if test else None),
                    result.ci_low if result else None, result.ci_high if result else None,
                    result.p_value if result else None, result.test if result else None,
                    result.n_shared if result else None,
                ])  # fmt: skip
    return rows


def _wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise missing_extra("wandb", "wandb", ConfigError) from exc
    return wandb


def log_comparison(
    comparison: Comparison, project: str, entity: str | None, output_dir: Path, mode: str | None = None
) -> CompareLog:
    """Log ``comparison`` into one W&B run; WandbLogError (exit 7) saying what did not happen."""
    from eval_framework import wandb_server
    from eval_framework.net import Kind, advice
    from eval_framework.sinks.wandb_mode import KEY_REJECTED, choose_mode, say_once
    from eval_framework.sinks.wandb_sink import check_server

    wandb = _wandb()
    chosen, note = choose_mode(WandbOptions(project=project, entity=entity, mode=mode))  # type: ignore[arg-type]
    if note:
        say_once(note)
    run_id = run_id_of(comparison, project)
    if chosen == "disabled":
        return CompareLog(run_id, chosen)
    if chosen == "online":
        failure = check_server()
        if failure is not None and failure.kind is Kind.AUTH:  # as evaluations do: offline, said
            say_once(KEY_REJECTED)
            chosen = "offline"
        elif failure is not None:
            where = advice(
                failure, "the W&B server", wandb_server.base_url(), "WANDB_BASE_URL", "WANDB_API_KEY"
            )
            raise WandbLogError(where, sink="W&B", what="W&B run start")
    run_dir = output_dir / "comparisons"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WandbLogError(f"cannot create {run_dir}: {exc.strerror}", sink="W&B", what="W&B run start",
                            hint="pass a writable --output-dir") from exc  # fmt: skip
    group = group_of(comparison)
    labels = comparison.labels
    config = {
        "versions": labels,
        "tasks": comparison.tasks,
        "baseline": comparison.baseline,
        "confidence": comparison.confidence,
        "bootstrap_seed": comparison.seed,
        "bootstrap_resamples": comparison.resamples,
        "bundles": sorted(str(e.bundle) for e in comparison.cells.values()),
    }
    settings = wandb.Settings(
        silent=True, console="off", disable_git=True, disable_code=True, save_code=False,
        x_disable_meta=True, x_disable_stats=True, x_save_requirements=False,
    )  # fmt: skip
    logged: list[str] = []
    run = None
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(cleanup.process_environment(WANDB_MODE=chosen))
            stack.enter_context(
                cleanup.process_environment(WANDB_DATA_DIR=str(run_dir / "wandb" / "sdk-data"))
            )
            run = wandb.init(
                project=project, entity=entity, id=run_id, resume="allow", group=group,
                job_type="compare", name=f"compare {group} {labels[0]}..{labels[-1]}", config=config,
                dir=str(run_dir), mode=chosen, settings=settings, reinit="create_new",
            )  # fmt: skip
            table = wandb.Table(columns=TABLE_COLUMNS, data=table_rows(comparison))
            payload: dict[str, Any] = {"comparison": table}
            for task in comparison.tasks:
                for metric in comparison.metrics[task]:
                    data = _chart_rows(comparison, task, metric)
                    if data:
                        chart_table = wandb.Table(columns=CHART_COLUMNS, data=data)
                        payload[f"{task}/{metric}/across_versions"] = wandb.plot.line(
                            chart_table, "version_index", "mean", title=f"{task} / {metric} across versions"
                        )
            run.log(payload)
            logged.append("table and charts")
            url = getattr(run, "url", None) if chosen == "online" else None
            offline = Path(run.dir).parent.resolve() if chosen == "offline" else None
            run.finish()
    except Exception as exc:
        if run is not None:
            with contextlib.suppress(Exception):
                run.finish(exit_code=1)
        raise WandbLogError(
            brief(exc), sink="W&B", what="W&B logging of the comparison",
            hint="rerun the same command (it updates the same run)", logged=tuple(logged),
        ) from exc  # fmt: skip
    return CompareLog(run_id, chosen, url, offline)


def _chart_rows(comparison: Comparison, task: str, metric: str) -> list[list[Any]]:
    from eval_framework.compare.plot_data import series

    for panel in series(comparison):
        if (panel.task, panel.metric) == (task, metric):
            index = {label: i for i, label in enumerate(comparison.labels)}
            return [[index[p.version], p.version, p.mean, p.low, p.high] for p in panel.points]
    return []
