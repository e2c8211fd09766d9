"""The registry's alias and metadata mutations, as the W&B server answers the SDK's
``Artifact.save()`` of an existing version: ``AddAliases`` / ``DeleteAliases`` (an alias names one
version of a collection at a time: adding it to one takes it from the other), ``IsProjectReadOnly``
(asked for a linked version before its source is updated) and ``UpdateArtifact`` (description,
metadata, tags), answered with the SDK's ``ArtifactFragment``. Mixed into ``FakeWandb``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.wandb_service import FakeCollection, FakeVersion


class AliasSide:
    collections: dict[tuple[str, str, str], FakeCollection]
    #: (collection, alias, "add" | "delete", version id) of each alias mutation, in order
    alias_moves: list[tuple[str, str, str, str]]
    #: the metadata each UpdateArtifact wrote, by artifact id
    metadata_updates: list[tuple[str, str]]
    #: artifact ids whose UpdateArtifact fails like a server refusing the write
    refuse_updates: set[str]

    def _init_aliases(self) -> None:
        self.alias_moves, self.metadata_updates, self.refuse_updates = [], [], set()

    def _version(self, artifact_id: str) -> FakeVersion:
        raise NotImplementedError

    def _artifact_fragment(self, version: FakeVersion) -> dict[str, Any]:
        raise NotImplementedError

    def _project(self, p: FakeCollection | None, name: str, entity: str) -> dict[str, Any]:
        raise NotImplementedError

    def _alias_targets(self, given: dict[str, Any]) -> list[tuple[FakeCollection, int, str]]:
        """(collection, member index, alias) of each alias input of an Add/DeleteAliases call."""
        from wandb.sdk.lib.service.service_connection import WandbApiFailedError

        version_id = given["artifactID"]
        found = []
        for alias in given["aliases"]:
            key = (alias["entityName"], alias["projectName"], alias["artifactCollectionName"])
            coll = self.collections.get(key)
            members = coll.members if coll else []
            index = next((i for i, (m, _) in enumerate(members) if m.id == version_id), None)
            if coll is None or index is None:
                raise WandbApiFailedError(f"404 Not Found: artifact {version_id} is not in {'/'.join(key)}")
            found.append((coll, index, alias["alias"]))
        return found

    def _op_AddAliases(self, v: dict[str, Any]) -> dict[str, Any]:
        for coll, index, alias in self._alias_targets(v["input"]):
            for _, aliases in coll.members:
                aliases.discard(alias)
            coll.members[index][1].add(alias)
            self.alias_moves.append((coll.name, alias, "add", coll.members[index][0].id))
        return {"result": {"success": True}}

    def _op_DeleteAliases(self, v: dict[str, Any]) -> dict[str, Any]:
        for coll, index, alias in self._alias_targets(v["input"]):
            coll.members[index][1].discard(alias)
            self.alias_moves.append((coll.name, alias, "delete", coll.members[index][0].id))
        return {"result": {"success": True}}

    def _op_IsProjectReadOnly(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"project": {"readOnly": False}}

    def _op_UpdateArtifact(self, v: dict[str, Any]) -> dict[str, Any]:
        from wandb.sdk.lib.service.service_connection import WandbApiFailedError

        given = v["input"]
        version = self._version(given["artifactID"])
        if version.id in self.refuse_updates:
            raise WandbApiFailedError("403 Forbidden: permission denied to update this artifact")
        if given.get("metadata") is not None:
            version.metadata = given["metadata"]
            self.metadata_updates.append((version.id, given["metadata"]))
        aliases = []
        for coll in self.collections.values():
            for member, names in coll.members:
                if member.id == version.id:
                    info = {"__typename": "ArtifactPortfolio", "name": coll.name,
                            "project": self._project(coll, coll.project, coll.entity)}  # fmt: skip
                    aliases += [{"__typename": "ArtifactAlias", "id": f"A:{a}", "alias": a,
                                 "artifactCollection": info} for a in sorted(names)]  # fmt: skip
        return {"result": {"artifact": {**self._artifact_fragment(version), "aliases": aliases}}}
