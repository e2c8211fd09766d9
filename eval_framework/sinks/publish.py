"""Send finished bundles to their sinks: Hugging Face first (its URL belongs in the W&B run),
then W&B. A failing sink never stops the others; the error names what is missing and the exact
``eval_framework upload`` command that finishes it."""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_framework.errors import ConfigError, EvalFrameworkError, ExportError, brief
from eval_framework.net import Kind, classify
from eval_framework.results import METADATA, Bundle, is_bundle_dir_name
from eval_framework.sinks import ledger
from eval_framework.sinks.hf_hub import HfUploadOptions, describe_failure, upload_bundle
from eval_framework.sinks.wandb_live import LiveRun
from eval_framework.sinks.wandb_mode import choose_mode
from eval_framework.sinks.wandb_sink import LogReport, log_bundle, records_digest, unsynced_offline_log
from eval_framework.sinks.wandb_spec import WandbOptions, build_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishOptions:
    wandb: WandbOptions | None = None
    hf: HfUploadOptions | None = None

    @property
    def any(self) -> bool:
        return self.wandb is not None or self.hf is not None


@dataclass
class PublishReport:
    bundle_dir: Path
    hf_url: str | None = None
    wandb: LogReport | None = None


def upload_command(bundle_dirs: list[Path], options: PublishOptions) -> str:
    parts = ["eval_framework", "upload", *(str(d) for d in bundle_dirs)]
    w = options.wandb
    if w is not None:
        parts += ["--wandb-project", w.project]
        for flag, value in (("--wandb-entity", w.entity), ("--wandb-group", w.group),
                            ("--wandb-run-id", w.run_id), ("--wandb-registry", w.registry)):  # fmt: skip
            if value:
                parts += [flag, value]
        for t in w.tags:
            parts += ["--wandb-tags", t]
        if not w.upload_results:
            parts.append("--no-wandb-upload-results")
        if w.table_rows != WandbOptions.table_rows:
            parts += ["--wandb-table-rows", str(w.table_rows)]
        if w.mode:
            parts += ["--wandb-mode", w.mode]
    if options.hf is not None:
        parts += ["--hf-upload-repo", options.hf.repo]
        if options.hf.directory:
            parts += ["--hf-upload-dir", options.hf.directory]
    return shlex.join(parts)


def preflight(options: PublishOptions) -> None:
    """Checks that cost seconds, made before an evaluation so that a missing extra or token is not
    found out after hours of it: the wandb and huggingface_hub extras, HF_TOKEN (and whether the Hub
    accepts it), the W&B mode. A service that cannot be reached right now is not refused here; the
    export at the end retries it and, if it still fails, names the command that finishes it."""
    if options.wandb is not None:
        from eval_framework.sinks.wandb_mode import choose_mode
        from eval_framework.sinks.wandb_sink import _wandb

        mode, _ = choose_mode(options.wandb)
        if mode != "disabled":
            _wandb()
    if options.hf is not None:
        from eval_framework.sinks.hf_hub import preflight as hf_preflight

        hf_preflight(options.hf)


def _sink_error(sink: str, what: str, exc: BaseException) -> ExportError:
    """One sink's failure as an ExportError: ours as they are, anything else named."""
    if isinstance(exc, ExportError):
        return exc
    if isinstance(exc, EvalFrameworkError):  # a ConfigError (no token, no extra) says what itself
        return ExportError(str(exc), sink=sink)
    if classify(exc).kind is Kind.OTHER:
        return ExportError(brief(exc, with_type=True), sink=sink, what=what)
    return ExportError(describe_failure(exc), sink=sink, what=what)


def publish(bundle_dir: Path, options: PublishOptions, live: LiveRun | None = None) -> PublishReport:
    """Upload and log one finished bundle. Every sink is tried whatever another one did (any
    exception, not only ours, is caught and reported); raises ExportError after trying all, its
    ``failures`` one per sink that failed."""
    report = PublishReport(bundle_dir)
    failures: list[ExportError] = []
    if options.hf is not None:
        try:
            report.hf_url = upload_bundle(bundle_dir, options.hf)
        except Exception as exc:
            log.debug("Hugging Face upload of %s failed", bundle_dir, exc_info=True)
            failures.append(_sink_error("Hugging Face", "Hugging Face upload", exc))
    if options.wandb is not None:
        try:
            report.wandb = live.finished(bundle_dir) if live else log_bundle(bundle_dir, options.wandb)
        except Exception as exc:
            log.debug("W&B logging of %s failed", bundle_dir, exc_info=True)
            failures.append(_sink_error("W&B", "W&B logging", exc))
        else:
            if report.wandb.url:
                Bundle(bundle_dir).record_link("wandb_run_url", report.wandb.url)
    if failures:
        raise ExportError.gathered(failures, upload_command([bundle_dir], options), bundle=bundle_dir)
    return report


def _expanded(paths: list[Path]) -> list[Path]:
    """A quoted glob (``'outputs/*ARC*'``, as the shell left it) stands for what it matches."""
    out: list[Path] = []
    for path in paths:
        text = str(path)
        if path.exists() or not any(c in text for c in "*?["):
            out.append(path)
            continue
        anchor = Path(path.anchor) if path.is_absolute() else Path()
        matches = sorted(anchor.glob(str(path.relative_to(anchor)) if path.is_absolute() else text))
        # as a shell expands it: hidden names (a bundle's lock, an unfinished --overwrite) and
        # plain files are not what a pattern over bundles means
        matches = [m for m in matches if not m.name.startswith(".") and m.is_dir()]
        if not matches:
            raise ConfigError(f"{path} matches nothing; pass bundle directories or a directory holding them")
        out += matches
    return out


def _invocations_opened(paths: list[Path]) -> list[Path]:
    """An invocation id (or its record file) stands for the bundles of that invocation."""
    from eval_framework.invocations import bundles_of

    out: list[Path] = []
    for path in paths:
        named = bundles_of(str(path))
        out += [path] if named is None else named
    return out


def find_bundles(paths: list[Path]) -> list[Path]:
    """Bundles named directly, by invocation id, or found below the given directories. Hidden
    siblings (an unfinished --overwrite, a swap in progress) and W&B run directories are not
    bundles."""
    found: list[Path] = []
    empty: list[Path] = []
    for path in _expanded(_invocations_opened(paths)):
        if not path.exists():
            raise ConfigError(f"{path} does not exist; pass bundle directories or a directory holding them")
        if (path / METADATA).exists():  # a directory in its place too: skipped later, saying why
            found.append(path)
            continue
        below = sorted(
            p.parent
            for p in path.rglob("metadata.json")
            if "wandb" not in p.parts[len(path.parts) :]
            and all(is_bundle_dir_name(part) for part in p.parent.parts[len(path.parts) :])
        )
        # A directory named that holds no bundle is kept, to be reported as not one (never
        # skipped in silence); directories found below a named one are only its bundles.
        found += below
        empty += [] if below else [path]
    unique = list(dict.fromkeys(p.resolve() for p in found + empty))
    if not found:
        raise ConfigError(
            f"no evaluation bundles (directories with metadata.json) under {', '.join(map(str, paths))}; "
            "pass bundle directories or the --output-dir that holds them"
        )
    return unique


def _wandb_plan(bundle: Bundle, options: WandbOptions) -> dict[str, Any]:
    """What a W&B log of ``bundle`` would do, in the mode it would run in (no server is asked)."""
    mode, note = choose_mode(options)
    spec = build_spec(bundle, options)
    online = mode == "online"
    if mode == "disabled":
        action = "nothing (W&B disabled)"
    elif not online and unsynced_offline_log(bundle, records_digest(spec, options)) is not None:
        action = "nothing new (already logged offline, not synced yet)"
    elif not online:
        action = "log offline"
    else:
        before = ledger.last(bundle.dir, "wandb", project=spec.project, run_id=spec.run_id, status="logged")
        action = "update" if before else "create"
    artifact = f"{spec.artifact_name}:{spec.artifact_alias}"
    later = "" if online else " (online only: pending until an online upload)"
    return {
        "mode": mode, "action": action, **({"note": note} if note else {}),
        "run": "/".join(p for p in (spec.entity or "<default entity>", spec.project, spec.run_id)),
        "group": spec.group, "job_type": spec.job_type, "name": spec.name, "tags": list(spec.tags),
        "summary_keys": len(spec.summary),
        "artifact": artifact if options.upload_results else None,
        "lineage": f"{spec.checkpoint.qualified_name}{later}" if spec.checkpoint.qualified_name else None,
        "registry_link": f"{options.registry}{later}" if options.registry else None,
    }  # fmt: skip


def plan(bundle_dir: Path, options: PublishOptions) -> dict[str, Any]:
    """What ``upload --dry-run`` prints for one bundle: nothing is sent."""
    bundle = Bundle(bundle_dir)
    out: dict[str, Any] = {"bundle": str(bundle_dir), "complete": bundle.is_complete()}
    if not out["complete"]:
        out["skip"] = bundle.skip_reason()
        return out
    if options.wandb is not None:
        out["wandb"] = _wandb_plan(bundle, options.wandb)
    if options.hf is not None:
        path = "/".join(p for p in (options.hf.directory.strip("/"), bundle_dir.name) if p)
        done = ledger.last(bundle_dir, "hf", repo=options.hf.repo, path=path, status="uploaded")
        out["hf"] = {"repo": options.hf.repo, "path": path, "action": "skip (uploaded)" if done else "commit"}
    return out
