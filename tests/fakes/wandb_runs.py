"""The run side of the fake W&B server: what ``wandb-core`` sends for an online ``wandb.init``.

Runs are upserted (``UpsertBucket``: config, tags, group, notes), their history and summary arrive
through the file stream (``POST /files/<entity>/<project>/<run>/file_stream``), their files and
logged artifacts are uploaded with ``PUT`` to URLs this server hands out, and an artifact becomes
a committed version of its collection when ``CommitArtifact`` arrives, with the manifest the SDK
uploaded. Those versions are then read back through the registry operations of ``FakeWandb``,
exactly like the checkpoints a test registers. The public API reads a run back as the real server
serves it (``Run``: config and summary; ``RunFiles``: its files, whose ``url`` is fetched with
``GET /files/<entity>/<project>/<run>/<name>``). Answers follow the shapes of the SDK's own GraphQL
documents (``wandb-core`` reads them into Go structs: a missing object is a crash, not an error).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from tests.fakes.wandb_service import FakeFile


@dataclass
class FakeRun:
    entity: str
    project: str
    name: str
    id: str
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    group: str | None = None
    job_type: str | None = None
    display_name: str | None = None
    notes: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)  #: uploaded run files by name
    exit_code: int | None = None  #: set when the stream says the run is complete
    #: every whole summary the file stream sent, in order (the last one is ``summary``)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    resumes: int = 0  #: ``RunResumeStatus`` answers that found this run (a writer resuming it)

    @property
    def state(self) -> str:
        if self.exit_code is None:
            return "running"
        return "finished" if self.exit_code == 0 else "failed"


class Rendezvous:
    """Holds the first ``parties`` callers until all have arrived (or ``timeout`` passed), then lets
    everyone through: a server slow enough that concurrent writers all read the same state."""

    def __init__(self, parties: int, timeout: float = 60.0) -> None:
        self.barrier = threading.Barrier(parties, timeout=timeout)
        self.arrived = 0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            self.arrived += 1
            first = self.arrived <= self.barrier.parties
        if first:
            with contextlib.suppress(threading.BrokenBarrierError):  # the others never came: answer anyway
                self.barrier.wait()


@dataclass
class PendingArtifact:
    """An artifact between ``CreateArtifact`` and ``CommitArtifact``."""

    id: str
    entity: str
    project: str
    collection: str
    type: str
    aliases: tuple[str, ...]
    run: str | None
    digest: str
    metadata: str | None
    manifest_key: str | None = None


class RunSide:
    """Mixed into ``FakeWandb``: its registry holds what runs log."""

    url: str  #: the server's address, for the upload URLs it hands out
    runs: dict[tuple[str, str, str], FakeRun]
    uploads: dict[str, bytes]  #: upload key -> bytes PUT there
    pending: dict[str, PendingArtifact]

    #: set by a test: ``RunResumeStatus`` answers wait here (see ``Rendezvous``)
    resume_rendezvous: Rendezvous | None

    def _init_runs(self) -> None:
        self.url = ""
        self.runs, self.uploads, self.pending = {}, {}, {}
        self.resume_rendezvous = None

    def run(self, project: str, name: str, entity: str | None = None) -> FakeRun:
        """A run the server holds (a test's read-back)."""
        from tests.fakes.wandb_service import USER

        return self.runs[(entity or USER, project, name)]

    # ---- runs ------------------------------------------------------------------------------
    def _op_UpsertBucket(self, v: dict[str, Any]) -> dict[str, Any]:
        from tests.fakes.wandb_service import USER

        entity, project = v.get("entity") or USER, v.get("project") or "uncategorized"
        key = (entity, project, v["name"])
        inserted = key not in self.runs
        run = self.runs.setdefault(key, FakeRun(entity, project, v["name"], f"UnVuOi{len(self.runs)}"))
        if v.get("config"):
            run.config = {k: item.get("value") for k, item in json.loads(v["config"]).items()}
        if v.get("summaryMetrics"):
            run.summary.update(json.loads(v["summaryMetrics"]))
        for attr, name in (("tags", "tags"), ("group", "groupName"), ("job_type", "jobType"),
                           ("display_name", "displayName"), ("notes", "notes")):  # fmt: skip
            if v.get(name) is not None:
                setattr(run, attr, v[name])
        return {"upsertBucket": {"inserted": inserted, "bucket": {
            "id": run.id, "name": run.name, "displayName": run.display_name or run.name,
            "description": run.notes, "config": json.dumps({k: {"value": c} for k, c in run.config.items()}),
            "sweepName": None, "historyLineCount": len(run.history),
            "project": self._run_project(entity, project),
        }}}  # fmt: skip

    def _op_RunResumeStatus(self, v: dict[str, Any]) -> dict[str, Any]:
        """What a resumed run continues from; ``bucket`` is null for a run the server never saw."""
        from tests.fakes.wandb_service import USER

        if self.resume_rendezvous is not None:
            self.resume_rendezvous.wait()
        entity, project = v.get("entity") or USER, v.get("project") or "uncategorized"
        run = self.runs.get((entity, project, v["name"]))
        bucket = None
        if run is not None:
            run.resumes += 1
            bucket = {
                "id": run.id, "name": run.name, "displayName": run.display_name or run.name,
                "summaryMetrics": json.dumps(run.summary), "logLineCount": 0,
                "historyLineCount": len(run.history), "eventsLineCount": 0,
                "historyTail": json.dumps([json.dumps(row) for row in run.history[-10:]]),
                "eventsTail": "[]", "config": json.dumps({k: {"value": c} for k, c in run.config.items()}),
                "tags": run.tags, "notes": run.notes,
                "wandbConfig": json.dumps({"t": (run.config.get("_wandb") or {}).get("t", {})}),
            }  # fmt: skip
        return {"model": {**self._run_project(entity, project), "bucket": bucket}}

    @staticmethod
    def _run_project(entity: str, project: str) -> dict[str, Any]:
        return {"id": f"P:{project}", "name": project, "entity": {"id": f"E:{entity}", "name": entity}}

    def file_stream(self, entity: str, project: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /files/<entity>/<project>/<run>/file_stream``: history lines, the summary, and at
        the end ``complete`` with the exit code."""
        run = self.runs[(entity, project, name)]
        for file_name, chunk in (body.get("files") or {}).items():
            lines = [json.loads(line) for line in chunk.get("content") or []]
            if file_name == "wandb-history.jsonl":
                run.history.extend(lines)
            elif file_name == "wandb-summary.json" and lines:
                run.summary = lines[-1]  # the stream sends the whole summary: the last one wins
                run.summaries.append(lines[-1])
        if body.get("complete"):
            run.exit_code = int(body.get("exitcode") or 0)
        return {"exitcode": None, "limits": {}}

    def _op_CreateRunFiles(self, v: dict[str, Any]) -> dict[str, Any]:
        run = self.runs[(v["entity"], v["project"], v["run"])]
        files = [{"name": n, "uploadUrl": f"{self.url}/upload/run/{run.id}/{n}"} for n in v["files"]]
        return {"createRunFiles": {"runID": run.id, "uploadHeaders": [], "files": files}}

    # ---- the public API reading a run back ------------------------------------------------
    def _config_json(self, run: FakeRun) -> str:
        return json.dumps({k: {"value": c} for k, c in run.config.items()})

    def _op_Run(self, v: dict[str, Any]) -> dict[str, Any]:
        """``Api().run(path)``: the run's ``RunFragment`` (config and summary as JSON strings)."""
        run = self.runs.get((v["entity"], v["project"], v["name"]))
        if run is None:
            known = any(k[:2] == (v["entity"], v["project"]) for k in self.runs)
            return {"project": {"run": None} if known else None}
        return {"project": {"run": {
            "projectId": "1", "id": run.id, "tags": run.tags, "name": run.name,
            "displayName": run.display_name or run.name, "sweepName": None, "state": run.state,
            "config": self._config_json(run), "group": run.group, "jobType": run.job_type, "commit": None,
            "readOnly": False, "createdAt": "2026-11-01T00:00:00", "heartbeatAt": "2026-11-01T00:00:00",
            "description": run.notes, "notes": run.notes, "systemMetrics": "{}",
            "summaryMetrics": json.dumps(run.summary), "historyLineCount": len(run.history),
            "user": {"name": "alice", "username": "alice"},
            "historyKeys": {"lastStep": len(run.history) - 1, "keys": {}},
        }}}  # fmt: skip

    def _op_RunFiles(self, v: dict[str, Any]) -> dict[str, Any]:
        """A page of the run's files: by ``fileNames``, or by ``pattern`` (MySQL LIKE: ``%`` any
        run of characters, ``_`` one), after ``fileCursor``, at most ``fileLimit``."""
        run = self.runs.get((v["entity"], v["project"], v["name"]))
        if run is None:
            return {"project": {"internalId": "1", "run": None}}
        names = sorted(run.files)
        if v.get("fileNames"):
            names = [n for n in names if n in v["fileNames"]]
        elif v.get("pattern"):
            like = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in v["pattern"])
            names = [n for n in names if re.fullmatch(like, n)]
        start = names.index(v["fileCursor"]) + 1 if v.get("fileCursor") in names else 0
        page = names[start : start + int(v.get("fileLimit") or 50)]
        edges = [{"node": self._file_node(run, name), "cursor": name} for name in page]
        info = {"endCursor": page[-1] if page else None, "hasNextPage": start + len(page) < len(names)}
        files = {"edges": edges, "pageInfo": info}
        return {"project": {"internalId": "1", "run": {"fileCount": len(run.files), "files": files}}}

    def _file_node(self, run: FakeRun, name: str) -> dict[str, Any]:
        data = run.files[name]
        url = f"{self.url}/files/{quote(run.entity)}/{quote(run.project)}/{quote(run.name)}/{quote(name)}"
        mimetype = "application/json" if name.endswith(".json") else "text/plain"
        return {"id": f"F:{run.id}/{name}", "name": name, "url": url, "directUrl": url,
                "sizeBytes": len(data), "mimetype": mimetype,
                "updatedAt": "2026-11-01T00:00:00",
                "md5": base64.b64encode(hashlib.md5(data).digest()).decode()}  # fmt: skip

    def run_file(self, entity: str, project: str, name: str, path: str) -> bytes | None:
        """``GET /files/<entity>/<project>/<run>/<path>``: a run file's bytes (None: no such file)."""
        run = self.runs.get((entity, project, name))
        return None if run is None else run.files.get(path)

    def uploaded(self, key: str, data: bytes) -> None:
        """``PUT /upload/<key>``: a run file or an artifact's file or manifest."""
        self.uploads[key] = data
        kind, _, rest = key.partition("/")
        if kind == "run":
            run_id, _, name = rest.partition("/")
            for run in self.runs.values():
                if run.id == run_id:
                    run.files[name] = data

    # ---- artifacts a run logs --------------------------------------------------------------
    def _op_ArtifactType(self, v: dict[str, Any]) -> dict[str, Any]:
        collection, _, alias = v["name"].partition(":")
        found = self._member(v["entity"], v["project"], collection, alias or "latest")
        if found is None:
            return {"project": {"artifact": None}}
        coll, index = found
        return {"project": {"artifact": {"artifactType": {"name": coll.members[index][0].type}}}}

    def _op_CreateArtifact(self, v: dict[str, Any]) -> dict[str, Any]:
        """A new version of a run's collection, pending until committed; contents the collection
        already holds (same digest) are that version, committed (the server's deduplication)."""
        from tests.fakes.wandb_service import FakeCollection

        given = v["input"]
        entity, project, name = given["entityName"], given["projectName"], given["artifactCollectionName"]
        coll = self.collections.setdefault((entity, project, name), FakeCollection(entity, project, name))
        latest = next((m.id for m, aliases in coll.members if "latest" in aliases), None)
        sequence = {"latestArtifact": {"id": latest} if latest else None}
        for member, _ in coll.members:
            if member.digest == given["digest"]:
                return {"createArtifact": {"artifact": {"id": member.id, "state": "COMMITTED",
                                                        "artifactSequence": sequence}}}  # fmt: skip
        pending = PendingArtifact(
            self._next_id(), entity, project, name, given["artifactTypeName"],
            tuple(a["alias"] for a in given.get("aliases") or [] if a["artifactCollectionName"] == name),
            given.get("runName"), given["digest"], given.get("metadata"),
        )  # fmt: skip
        self.pending[pending.id] = pending
        created = {"id": pending.id, "state": "PENDING", "artifactSequence": sequence}
        return {"createArtifact": {"artifact": created}}

    def _manifest_answer(self, artifact_id: str, include_upload: bool) -> dict[str, Any]:
        file: dict[str, Any] = {"id": f"F:manifest/{artifact_id}"}
        if include_upload:
            file.update(uploadUrl=f"{self.url}/upload/manifest/{artifact_id}", uploadHeaders=[])
        return {"artifactManifest": {"id": f"AM:{artifact_id}", "file": file}}

    def _op_CreateArtifactManifest(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"createArtifactManifest": self._manifest_answer(v["artifactID"], v["includeUpload"])}

    def _op_UpdateArtifactManifest(self, v: dict[str, Any]) -> dict[str, Any]:
        artifact_id = v["artifactManifestID"].removeprefix("AM:")
        return {"updateArtifactManifest": self._manifest_answer(artifact_id, v["includeUpload"])}

    def _op_CreateArtifactFiles(self, v: dict[str, Any]) -> dict[str, Any]:
        """Upload URLs for the files whose bytes the server does not hold yet (by MD5)."""
        edges = []
        for given in v["input"]["artifactFiles"]:
            md5 = given["md5"]
            key = f"blob/{base64.urlsafe_b64decode(md5).hex()}"
            url = None if key in self.uploads else f"{self.url}/upload/{key}"
            node = {"storagePath": key, "uploadUrl": url, "uploadHeaders": [], "uploadMultipartUrls": None,
                    "artifact": {"id": given["artifactID"]}}  # fmt: skip
            edges.append({"node": node})
        return {"createArtifactFiles": {"files": {"edges": edges}}}

    def _op_CommitArtifact(self, v: dict[str, Any]) -> dict[str, Any]:
        """The uploaded manifest's files become a committed version of the collection."""
        from tests.fakes.wandb_service import FakeCollection, FakeVersion

        pending = self.pending.pop(v["artifactID"])
        manifest = json.loads(self.uploads[f"manifest/{pending.id}"])
        files: list[FakeFile] = []
        for path, entry in manifest["contents"].items():
            blob = self.uploads[f"blob/{base64.b64decode(entry['digest']).hex()}"]
            assert base64.b64encode(hashlib.md5(blob).digest()).decode() == entry["digest"], path
            files.append(self.stored_file(path, blob))  # type: ignore[attr-defined]
        key = (pending.entity, pending.project, pending.collection)
        coll = self.collections.setdefault(key, FakeCollection(*key))  # type: ignore[attr-defined]
        run = (pending.entity, pending.project, pending.run) if pending.run else None
        version = FakeVersion(pending.id, pending.collection, len(coll.members), files, run=run,
                              type=pending.type, source_project=(pending.entity, pending.project),
                              manifest_digest=pending.digest, metadata=pending.metadata or "{}")  # fmt: skip
        self._add_member(coll, version, pending.aliases)  # type: ignore[attr-defined]
        return {"commitArtifact": {"artifact": {"id": version.id, "digest": version.digest}}}
