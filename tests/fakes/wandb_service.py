"""The state and GraphQL answers of a fake W&B server (served over HTTP by
``tests/fakes/wandb_registry_http.py``).

An in-memory registry (orgs, collections, versions, aliases, files, producing runs) answers
the operations the SDK and its service send, with the response shapes of the real server; the
run side (``tests/fakes/wandb_runs.py``) adds what online runs send. Manifests and W&B-stored
file bytes are served from a real S3 endpoint (moto) through presigned URLs, which is how the
SDK fetches them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.wandb_aliases import AliasSide
from tests.fakes.wandb_runs import RunSide

ORG_NAME = "acme"  # the org's display name users type
ORG_ENTITY = "acme-org"  # the org entity the server uses
USER = "alice"
VALID_KEY = "k" * 40


@dataclass
class FakeFile:
    path: str
    size: int
    digest: str
    ref: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    storage_key: str | None = None  # W&B-stored bytes live in the fake's bucket under this key


@dataclass
class FakeVersion:
    id: str
    source_collection: str
    source_index: int
    files: list[FakeFile]
    run: tuple[str, str, str] | None = ("alice", "train", "run-abc")
    type: str = "model"
    source_project: tuple[str, str] = (USER, "train")  # (entity, project) it was logged to
    manifest_digest: str | None = None  #: the digest the SDK computed, for versions a run logged
    metadata: str = "{}"

    @property
    def digest(self) -> str:
        if self.manifest_digest:
            return self.manifest_digest
        return hashlib.md5("".join(f.path + f.digest for f in self.files).encode()).hexdigest()


@dataclass
class FakeCollection:
    entity: str
    project: str
    name: str
    members: list[tuple[FakeVersion, set[str]]] = field(default_factory=list)


class FakeWandb(RunSide, AliasSide):
    def __init__(self, s3: Any, bucket: str) -> None:
        self._init_runs()
        self._init_aliases()
        self.s3, self.bucket = s3, bucket
        s3.create_bucket(Bucket=bucket)
        self.collections: dict[tuple[str, str, str], FakeCollection] = {}
        self.registries: set[str] = set()  # registry projects with no collection yet
        self.calls: list[str] = []
        self.lookups: list[str] = []  #: "collection:alias" of each version lookup
        self.uses: list[tuple[str, str, str, str]] = []  # (entity, project, run, artifact id): lineage
        self._ids = 0

    # ---- building the registry ------------------------------------------------------------
    def _next_id(self) -> str:
        self._ids += 1
        return f"QXJ0aWZhY3Q6{self._ids}"

    def stored_file(self, path: str, data: bytes) -> FakeFile:
        key = f"objects/{hashlib.sha256(data).hexdigest()}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        digest = base64.b64encode(hashlib.md5(data).digest()).decode()
        return FakeFile(path, len(data), digest, storage_key=key)

    def add_version(self, project: str, name: str, files: list[FakeFile], aliases: tuple[str, ...] = (),
                    entity: str = ORG_ENTITY, source_index: int | None = None) -> str:  # fmt: skip
        """A registry version (linked from a training project's collection)."""
        coll = self.collections.setdefault((entity, project, name), FakeCollection(entity, project, name))
        source = len(coll.members) + 3 if source_index is None else source_index  # indices differ on purpose
        version = FakeVersion(self._next_id(), f"{name}-source", source, files)
        return f"v{self._add_member(coll, version, aliases)}"

    def add_registry(self, name: str) -> None:
        """An (empty) registry of the org: ``wandb-registry-<name>``."""
        self.registries.add(f"wandb-registry-{name}")

    @staticmethod
    def _add_member(coll: FakeCollection, version: FakeVersion, aliases: tuple[str, ...]) -> int:
        for _, other_aliases in coll.members:
            other_aliases.discard("latest")
            other_aliases.difference_update(aliases)
        coll.members.append((version, {"latest", *aliases}))
        return len(coll.members) - 1

    @classmethod
    def _member_or_add(cls, coll: FakeCollection, version: FakeVersion, aliases: tuple[str, ...],
                       same: Callable[[FakeVersion], bool]) -> int:  # fmt: skip
        """The index of the member ``same`` picks (it gains ``aliases``), else of ``version`` added."""
        for index, (member, member_aliases) in enumerate(coll.members):
            if same(member):
                member_aliases.update(aliases)
                return index
        return cls._add_member(coll, version, aliases)

    # ---- GraphQL operations (served by tests/fakes/wandb_registry_http.py) -------------
    def _project(self, p: FakeCollection | None, name: str, entity: str) -> dict[str, Any]:
        return {"id": f"P:{name}", "internalId": "1", "name": name, "entity": {"name": entity}}

    def _op_GetDefaultEntity(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"viewer": {"id": "VXNlcjox", "entity": USER}}

    def _op_FetchOrgInfoFromEntity(self, _: dict[str, Any]) -> dict[str, Any]:
        org = {"name": ORG_NAME, "orgEntity": {"name": ORG_ENTITY}}
        return {"entity": {"organization": None, "user": {"organizations": [org]}}}

    def _member(
        self, entity: str, project: str, collection: str, alias: str
    ) -> tuple[FakeCollection, int] | None:
        coll = self.collections.get((entity, project, collection))
        if coll is None:
            return None
        for index, (_, aliases) in enumerate(coll.members):
            if alias == f"v{index}" or alias in aliases:
                return coll, index
        return None

    def _op_ArtifactMembershipByName(self, v: dict[str, Any]) -> dict[str, Any]:
        self.lookups.append(v["name"])
        collection, _, alias = v["name"].partition(":")
        if not any(k[0] == v["entity"] and k[1] == v["project"] for k in self.collections):
            return {"project": None}
        found = self._member(v["entity"], v["project"], collection, alias or "latest")
        if found is None:
            return {"project": {"artifactCollectionMembership": None}}
        coll, index = found
        version, aliases = coll.members[index]
        project = self._project(coll, coll.project, coll.entity)
        return {"project": {"artifactCollectionMembership": {
            "__typename": "ArtifactCollectionMembership", "id": f"M:{version.id}", "versionIndex": index,
            "createdAt": "2026-11-01T00:00:00",
            "aliases": [{"__typename": "ArtifactAlias", "id": f"A:{a}", "alias": a} for a in sorted(aliases)],
            "artifactCollection": {"__typename": "ArtifactPortfolio", "name": coll.name, "project": project},
            "artifact": self._artifact_fragment(version),
        }}}  # fmt: skip

    def _artifact_fragment(self, version: FakeVersion) -> dict[str, Any]:
        """The SDK's ``ArtifactFragment`` of one version."""
        return {
            "__typename": "Artifact", "id": version.id,
            "artifactSequence": {"__typename": "ArtifactSequence", "name": version.source_collection,
                                 "project": self._project(None, version.source_project[1],
                                                          version.source_project[0])},
            "versionIndex": version.source_index, "artifactType": {"name": version.type},
            "description": "", "metadata": version.metadata, "ttlDurationSeconds": -1, "ttlIsInherited": True,
            "tags": [],
            "historyStep": None, "state": "COMMITTED", "size": sum(f.size for f in version.files),
            "digest": version.digest, "digestAlgorithm": "MANIFEST_MD5", "commitHash": "c0ffee",
            "fileCount": len(version.files), "createdAt": "2026-11-01T00:00:00",
            "updatedAt": "2026-11-01T00:00:00"}  # fmt: skip

    def _op_ArtifactByID(self, v: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"artifact": self._artifact_fragment(self._version(v["id"]))}
        except AssertionError:
            return {"artifact": None}

    def _version(self, artifact_id: str) -> FakeVersion:
        for coll in self.collections.values():
            for version, _ in coll.members:
                if version.id == artifact_id:
                    return version
        raise AssertionError(f"unknown artifact id {artifact_id}")

    def _presign(self, key: str) -> str:
        return str(self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key}))

    def _op_FetchArtifactManifest(self, v: dict[str, Any]) -> dict[str, Any]:
        version = self._version(v["id"])
        contents = {}
        for f in version.files:
            entry: dict[str, Any] = {"digest": f.digest, "size": f.size}
            if f.ref:
                entry["ref"] = f.ref
            if f.extra:
                entry["extra"] = f.extra
            contents[f.path] = entry
        manifest = {"version": 1, "storagePolicy": "wandb-storage-policy-v1",
                    "storagePolicyConfig": {"storageLayout": "V2"}, "contents": contents}  # fmt: skip
        key = f"manifests/{version.id}.json"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(manifest).encode())
        return {"artifact": {"currentManifest": {"file": {"directUrl": self._presign(key)}}}}

    def _op_GetArtifactMembershipFileUrls(self, v: dict[str, Any]) -> dict[str, Any]:
        found = self._member(v["entity"], v["project"], v["collection"], v["alias"])
        assert found is not None
        coll, index = found
        version = coll.members[index][0]
        # Like the server, every manifest entry is listed; reference entries get a storage URL
        # the SDK does not use (it reads the reference itself).
        edges = [{"node": {"__typename": "File", "name": f.path,
                           "directUrl": self._presign(f.storage_key or f"refs/{version.id}/{f.path}")}}
                 for f in version.files]  # fmt: skip
        return {"project": {"artifactCollection": {"__typename": "ArtifactPortfolio", "artifactMembership": {
            "files": {"pageInfo": {"__typename": "PageInfo", "endCursor": None, "hasNextPage": False},
                      "edges": edges}}}}}  # fmt: skip

    def _op_ProjectArtifactCollection(self, v: dict[str, Any]) -> dict[str, Any]:
        coll = self.collections.get((v["entity"], v["project"], v["name"]))
        if coll is None or v["type"] != coll.members[0][0].type:
            return {"project": {"artifactType": None}}
        return {"project": {"artifactType": {"artifactCollection": {
            "__typename": "ArtifactPortfolio", "id": f"C:{coll.entity}/{coll.project}/{coll.name}",
            "name": coll.name, "description": "", "createdAt": "2026-11-01T00:00:00", "updatedAt": None,
            "project": self._project(coll, coll.project, coll.entity), "type": {"name": v["type"]},
            "tags": {"edges": []}}}}}  # fmt: skip

    def _op_ProjectArtifacts(self, v: dict[str, Any]) -> dict[str, Any]:
        """The versions of a collection (``Api.artifacts``), newest first, paged by an opaque
        cursor; each edge carries the collection's own version name and the node its aliases."""
        if not any(k[0] == v["entity"] and k[1] == v["project"] for k in self.collections):
            return {"project": None}
        coll = self.collections.get((v["entity"], v["project"], v["collection"]))
        if coll is None or v["type"] != coll.members[0][0].type:
            return {"project": {"artifactType": None if coll is None else {"artifactCollection": None}}}
        newest_first = list(reversed(list(enumerate(coll.members))))
        start = int(base64.b64decode(v["cursor"]).decode().partition(":")[2]) if v.get("cursor") else 0
        page = newest_first[start : start + int(v.get("perPage") or 50)]
        end = start + len(page)
        with_aliases = v.get("includeAliases", True)
        edges = [
            {"version": f"v{index}", "node": self._listed(coll, version, aliases if with_aliases else None)}
            for index, (version, aliases) in page
        ]
        cursor = base64.b64encode(f"offset:{end}".encode()).decode()
        page_info = {"__typename": "PageInfo", "endCursor": cursor, "hasNextPage": end < len(newest_first)}
        connection = {"totalCount": len(newest_first), "edges": edges, "pageInfo": page_info}
        collection = {"__typename": "ArtifactPortfolio", "artifacts": connection}
        return {"project": {"artifactType": {"artifactCollection": collection}}}

    def _listed(self, coll: FakeCollection, version: FakeVersion, aliases: set[str] | None) -> dict[str, Any]:
        """A version as a listing shows it: its fragment with its aliases in this collection."""
        info = {"__typename": "ArtifactPortfolio", "name": coll.name,
                "project": self._project(coll, coll.project, coll.entity)}  # fmt: skip
        shown = [{"__typename": "ArtifactAlias", "id": f"A:{a}", "alias": a, "artifactCollection": info}
                 for a in sorted(aliases or ())]  # fmt: skip
        return {**self._artifact_fragment(version), "aliases": shown if aliases is not None else None}

    def _op_ArtifactCollectionAliases(self, v: dict[str, Any]) -> dict[str, Any]:
        coll = self.collections[tuple(v["id"].removeprefix("C:").split("/"))]  # type: ignore[index]
        names = sorted({a for _, aliases in coll.members for a in aliases})
        edges = [{"node": {"__typename": "ArtifactAlias", "id": f"A:{a}", "alias": a}} for a in names]
        return {"artifactCollection": {"__typename": "ArtifactPortfolio", "aliases": {
            "pageInfo": {"__typename": "PageInfo", "endCursor": None, "hasNextPage": False},
            "edges": edges}}}  # fmt: skip

    def _op_ArtifactCreatedBy(self, v: dict[str, Any]) -> dict[str, Any]:
        run = self._version(v["id"]).run
        if run is None:
            return {"artifact": {"createdBy": None}}
        entity, project, run_id = run
        return {"artifact": {"createdBy": {"__typename": "Run", "id": f"R:{run_id}", "name": run_id,
                                           "project": self._project(None, project, entity)}}}  # fmt: skip

    def _op_UseArtifact(self, v: dict[str, Any]) -> dict[str, Any]:
        """A run declares an artifact version as its input: the lineage edge."""
        version = self._version(v["artifactID"])
        self.uses.append((v["entityName"], v["projectName"], v["runName"], version.id))
        return {"useArtifact": {"artifact": {"id": version.id, "digest": version.digest, "description": "",
                                             "state": "COMMITTED", "createdAt": "2026-11-01T00:00:00",
                                             "metadata": "{}"}}}  # fmt: skip

    def _op_LinkArtifact(self, v: dict[str, Any]) -> dict[str, Any]:
        """Link a version into a registry collection (created on first link); linking the same
        version again returns its membership. An unknown registry fails like the server."""
        from wandb.sdk.lib.service.service_connection import WandbApiFailedError

        given = v["input"]
        entity, project, name = given["entityName"], given["projectName"], given["artifactPortfolioName"]
        known = self.registries | {k[1] for k in self.collections if k[0] == entity}
        if project not in known:
            raise WandbApiFailedError(f"404 Not Found: project {entity}/{project} not found")
        version = self._version(given["artifactID"])
        aliases = tuple(a["alias"] for a in given.get("aliases") or [])
        coll = self.collections.setdefault((entity, project, name), FakeCollection(entity, project, name))
        index = self._member_or_add(coll, version, aliases, lambda m: m.id == version.id)  # linked again
        return {"result": {"versionIndex": index}}
