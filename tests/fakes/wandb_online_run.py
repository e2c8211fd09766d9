"""An online ``wandb.Run`` for tests: none can start here (the SDK's service talks HTTP to the
server), so this one does what the SDK's online run does for the calls that need the server,
through the SDK's own code, answered by the fake W&B service:

- ``use_artifact(name)``: the SDK resolves the name and sends the ``UseArtifact`` mutation
  (``Run.use_artifact`` in wandb 0.31 does exactly these two steps);
- ``log_artifact``: the server side of an upload: the artifact's files become a committed version;
- ``link_artifact``: the SDK's ``Artifact.link`` on that committed version (what
  ``Run.link_artifact`` calls once the upload has committed).

Config, summary and ``log`` only record what they receive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.wandb_service import USER, FakeWandb


class _Updatable(dict[str, Any]):
    def update(self, values: Any = (), allow_val_change: bool = False, **kwargs: Any) -> None:
        super().update(values, **kwargs)


class OnlineRun:
    def __init__(self, fake: FakeWandb, project: str = "evals", run_id: str = "eval-run") -> None:
        import wandb

        self.fake, self.entity, self.project, self.id = fake, USER, project, run_id
        self.api = wandb.Api()
        self.config = _Updatable()
        self.summary = _Updatable()
        self.notes = ""
        self.logged: list[dict[str, Any]] = []
        self._committed: dict[int, Any] = {}  # id(draft artifact) -> its committed version

    def log(self, data: dict[str, Any]) -> None:
        self.logged.append(data)

    def log_artifact(self, artifact: Any, aliases: list[str] | None = None) -> Any:
        files = [
            self.fake.stored_file(entry.path, Path(entry.local_path).read_bytes())
            for entry in artifact.manifest.entries.values()
        ]
        version = self.fake.commit_logged(self.entity, self.project, artifact.name, artifact.type, files,
                                          tuple(aliases or ()), self.id)  # fmt: skip
        path = f"{self.entity}/{self.project}/{artifact.name}:{version}"
        self._committed[id(artifact)] = self.api.artifact(path)
        return artifact

    def use_artifact(self, name: str) -> Any:
        from wandb.sdk.artifacts._gqlutils import record_artifact_use

        artifact = self.api._artifact(name)
        record_artifact_use(
            self.api._service_api,
            artifact_id=artifact.id,
            entity_name=self.entity,
            project_name=self.project,
            run_name=self.id,
            artifact_entity_name=artifact.entity,
            artifact_project_name=artifact.project,
        )
        return artifact

    def link_artifact(self, artifact: Any, target_path: str, aliases: list[str] | None = None) -> Any:
        return self._committed[id(artifact)].link(target_path, aliases)
