"""``--context determined``: the Determined trial this process runs, and what the trial is told.

Inside a trial, the trial's hyperparameters (the cluster info Determined gives the process) say
what to evaluate (``determined_hparams``). Off a cluster, ``--hparams FILE`` runs the same
hyperparameters on this machine: FILE is an experiment file (its ``hyperparameters`` block, every
value fixed) or a mapping of hyperparameters. Either way the Core API context is Determined's own
(``core.init()``, which off-cluster is its local stand-in): finished tasks report their metrics
as validation metrics (``<task>/<metric>``), and when a trial runs several processes (a
launcher's) only the chief evaluates and writes (``distributed_context``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_framework.config import read_yaml_mapping
from eval_framework.errors import ConfigError, missing_extra

HOW_TO_RUN_LOCALLY = (
    "to run a trial's hyperparameters on this machine: eval_framework --context determined --hparams "
    "FILE (an experiment file whose hyperparameters are fixed values, or a mapping of them); to run "
    "it on the cluster: det experiment create FILE . (see docs/determined.md)"
)


@dataclass(frozen=True)
class Trial:
    """The trial this process runs: its hyperparameters and, on a cluster, its ids."""

    hparams: dict[str, Any]
    trial_id: int | None = None
    experiment_id: int | None = None
    local: bool = False  #: run from --hparams, off a cluster
    #: the checkpoint a resumed trial continues from (Determined's storage id)
    latest_checkpoint: str | None = None

    def ids(self) -> dict[str, Any]:
        """What identifies the trial in records (W&B config, the invocation record)."""
        if self.local:
            return {"determined": "local"}
        return {"determined_trial_id": self.trial_id, "determined_experiment_id": self.experiment_id}


def _determined() -> Any:
    try:
        import determined
    except ImportError as exc:
        raise missing_extra("determined", "determined", ConfigError) from exc
    return determined


def current_trial(hparams_file: Path | None) -> Trial:
    """The trial: from ``--hparams`` when given, else from Determined's cluster info."""
    if hparams_file is not None:
        return Trial(read_hparams_file(hparams_file), local=True)
    info = _determined().get_cluster_info()
    if info is None or info.task_type != "TRIAL":
        raise ConfigError(
            f"--context determined: this process is not a Determined trial (no trial cluster info); "
            f"{HOW_TO_RUN_LOCALLY}"
        )
    trial = info.trial
    return Trial(
        dict(trial.hparams), trial.trial_id, trial.experiment_id, latest_checkpoint=info.latest_checkpoint
    )


def read_hparams_file(path: Path) -> dict[str, Any]:
    """The hyperparameters of an experiment file (or a file holding only them), every one a fixed
    value: a ``const`` is its ``val``; a search (``categorical``, ``int``, ...) is refused, naming
    it, since one local run is one trial."""
    data = read_yaml_mapping(path, f"--hparams {path}", ConfigError, "hyperparameters")
    experiment = "entrypoint" in data or "searcher" in data or "resources" in data
    if experiment and "hyperparameters" not in data:
        raise ConfigError(
            f"--hparams {path} is an experiment file without a hyperparameters block; add one "
            "(llm_name, task_args, ...: see configs/README.md)"
        )
    block = data.get("hyperparameters", data)
    if not isinstance(block, Mapping):
        raise ConfigError(f"--hparams {path}: hyperparameters must be a mapping of names to values")
    if not block:
        raise ConfigError(f"--hparams {path} holds no hyperparameters; give llm_name, task_args, ...")
    return {str(k): _fixed(v, str(k), path) for k, v in block.items()}


_SEARCHES = ("categorical", "int", "double", "log")


def _fixed(value: Any, name: str, path: Path) -> Any:
    if not isinstance(value, Mapping):
        return value
    kind = value.get("type")
    if kind is None:  # a nested hyperparameter: each key on its own
        return {str(k): _fixed(v, f"{name}.{k}", path) for k, v in value.items()}
    where = f"--hparams {path}: hyperparameter {name}"
    if kind == "const":
        if "val" not in value:
            raise ConfigError(f"{where} is type: const without a val; add val: <the value>")
        return value["val"]
    if kind not in _SEARCHES:
        raise ConfigError(
            f"{where} has type: {kind!r}, which is no Determined hyperparameter type (const, "
            f"{', '.join(_SEARCHES)}); a mapping with a key named type must be written "
            "{type: const, val: {...}}"
        )
    vals: list[Any] = list(value.get("vals") or []) if kind == "categorical" else []
    if kind == "categorical" and not vals:
        raise ConfigError(f"{where} is categorical with no vals; list its values or make it const")
    if len(vals) == 1:
        return vals[0]
    count = f" over {len(vals)} values" if vals else ""
    raise ConfigError(
        f"{where} is a search ({kind}{count}), and a local run is one trial; set it to one value "
        "(type: const, val: ...) in a copy of the file"
    )


#: The variables a launcher sets for each process it starts, by launcher (Determined's
#: ``DistributedContext.from_<launcher>`` reads them).
_LAUNCHER_VARIABLES = {
    "torch_distributed": (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "GROUP_RANK",
        "GROUP_WORLD_SIZE",
    ),
    "deepspeed": ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", "CROSS_RANK", "CROSS_SIZE"),
}


def distributed_context(
    trial: Trial, environ: Mapping[str, str] | None = None, info: Any = None
) -> Any | None:
    """The trial's processes as Determined's ``DistributedContext``, or None for a lone process.

    Several processes come from a launcher (``determined.launch.torch_distributed`` or
    ``.deepspeed``, read from the variables it sets) or, without one, from a trial spanning
    several containers (one process each, ranked by container). A single process holding several
    slots gets a context of one, which ``core.init()`` requires of a multi-slot trial. ``environ``
    and ``info`` (the cluster info) are the process's own by default."""
    environ = os.environ if environ is None else environ
    core = _determined().core
    for launcher, names in _LAUNCHER_VARIABLES.items():
        if all(name in environ for name in names):
            return getattr(core.DistributedContext, f"from_{launcher}")()
    if "RANK" in environ:
        lacking = {k: [n for n in v if n not in environ] for k, v in _LAUNCHER_VARIABLES.items()}
        said = "; ".join(
            f"for {k}, {', '.join(v)}" for k, v in sorted(lacking.items(), key=lambda i: len(i[1]))
        )
        raise ConfigError(
            f"RANK is set ({environ['RANK']}) but not the other variables a launcher sets ({said}); "
            "start the trial's processes with python3 -m determined.launch.torch_distributed (or "
            "deepspeed), or unset RANK for one process"
        )
    if trial.local:
        return None
    info = info or _determined().get_cluster_info()
    containers = list(info.container_addrs) if info is not None else []
    if len(containers) > 1:
        rank = int(info.container_rank)
        return core.DistributedContext(
            rank=rank, size=len(containers), local_rank=0, local_size=1, cross_rank=rank,
            cross_size=len(containers), chief_ip=containers[0],
        )  # fmt: skip
    if info is not None and len(info.slot_ids) > 1:
        return core.DistributedContext(rank=0, size=1, local_rank=0, local_size=1, cross_rank=0, cross_size=1)
    return None


@contextlib.contextmanager
def core_context(trial: Trial, local_storage: Path, distributed: Any | None = None) -> Iterator[Any]:
    """Determined's Core API context: the cluster's inside a trial (its checkpoint storage is the
    experiment's), its local stand-in off one (checkpoints go to ``local_storage``). Every process
    of the trial enters it (``core.init()`` is a step they take together)."""
    core = _determined().core
    storage = str(local_storage) if trial.local else None
    # Only the chief asks about preemption: the others wait for it and do nothing to interrupt.
    context = core.init(
        distributed=distributed, checkpoint_storage=storage, preempt_mode=core.PreemptMode.ChiefOnly
    )
    with context:
        yield context


def preemption_check(context: Any) -> Any:
    """A stop check (``cleanup.stop_checks``) asking Determined whether to stop."""

    def check() -> str | None:
        if context.preempt.should_preempt():
            return "Determined asked the trial to stop (preemption, a pause or a kill)"
        return None

    return check


def save_partial(context: Any, output_dir: Path, names: list[str], steps_completed: int) -> str:
    """Upload the invocation's bundles (finished and partial) and its record as a checkpoint, so
    that the trial resumed on any node continues them; its storage id. They are uploaded from a
    copy: Determined writes its own metadata.json into the folder it uploads."""
    import shutil

    staging = output_dir / ".determined-checkpoint-upload"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for name in names:
            if (output_dir / name).is_dir():
                shutil.copytree(output_dir / name, staging / name, symlinks=True)
        metadata = {"steps_completed": steps_completed, "eval_framework": "partial invocation"}
        return str(context.checkpoint.upload(staging, metadata=metadata))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def restore(context: Any, storage_id: str, output_dir: Path, staging: Path) -> list[str]:
    """The bundles of checkpoint ``storage_id`` put in ``output_dir``: those this node does not
    hold already (a node that kept its files has them as they were, or further on). Their names."""
    import shutil

    shutil.rmtree(staging, ignore_errors=True)
    mode = _determined().core.DownloadMode.NoSharedDownload  # only the chief restores
    context.checkpoint.download(storage_id, staging, download_mode=mode)
    restored = []
    for entry in sorted(staging.iterdir()):
        if entry.name == "metadata.json":  # Determined's own file for the checkpoint
            continue
        target = output_dir / entry.name
        if target.exists():
            if entry.name == "invocations":  # records of runs this node did not see
                for record in entry.iterdir():
                    if not (target / record.name).exists():
                        shutil.move(str(record), str(target / record.name))
            continue
        output_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(entry), str(target))
        restored.append(entry.name)
    shutil.rmtree(staging, ignore_errors=True)
    return restored


def is_chief(context: Any) -> bool:
    return int(context.distributed.rank) == 0


def metrics_of(task: str, overall: Mapping[str, Any]) -> dict[str, float]:
    """A task's overall metrics as Determined validation metrics: ``<task>/<metric>`` (and its
    stderr), numbers only (the web UI charts them)."""
    out: dict[str, float] = {}
    for name, stats in overall.items():
        value, stderr = getattr(stats, "value", None), getattr(stats, "stderr", None)
        if isinstance(value, int | float):
            out[f"{task}/{name}"] = float(value)
        if isinstance(stderr, int | float):
            out[f"{task}/{name}_stderr"] = float(stderr)
    return out
