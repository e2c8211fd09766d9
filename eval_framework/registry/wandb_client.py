"""The W&B Registry through the wandb SDK: look up versions, read manifests, name the producer.

Only lookups go through the SDK; file bytes are fetched by ``download.py`` (the SDK's own
cache-skipping download is unsafe in the pinned release). The file-URL and producer queries use the
SDK's generated GraphQL operations and models (private modules); the wandb pin in pyproject.toml
keeps them stable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from eval_framework import wandb_server
from eval_framework.errors import RegistryError, missing_extra
from eval_framework.net import Failure, Kind, advice, classify
from eval_framework.redact import scrub
from eval_framework.registry.manifest import ManifestEntry
from eval_framework.registry.reference import CheckpointRef


@dataclass(frozen=True)
class ArtifactIdentity:
    """What the run logger needs for lineage and grouping."""

    qualified_name: str  #: org-entity/project/collection:vN (the registry version)
    collection: str
    version: str  #: index in the registry collection, e.g. v3
    source_version: str  #: index in the source collection, e.g. v7
    source_name: str  #: source collection:version
    aliases: tuple[str, ...]
    digest: str
    produced_by: str | None  #: entity/project/run-id of the run that logged it

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


#: Reachability probes before the registry is asked, and the cap on the wait between them.
PROBE_ATTEMPTS = 3
PROBE_WAIT_MAX = 10.0


def _has_key() -> bool:
    return wandb_server.api_key() is not None


class WandbRegistry:
    def __init__(self, timeout: float | None = None) -> None:
        try:
            import wandb
            import wandb.errors
        except ImportError as exc:
            raise missing_extra("wandb", "wandb", RegistryError) from exc
        self._errors = wandb.errors
        if not _has_key():
            raise RegistryError(
                "no W&B API key found: set WANDB_API_KEY in the environment or .env "
                "(and WANDB_BASE_URL for a non-default server)"
            )
        self._check_server()
        self.timeout = wandb_server.lookup_timeout() if timeout is None else timeout
        try:
            self.api = wandb.Api(timeout=self.timeout)  # type: ignore[arg-type]
        except wandb.errors.AuthenticationError as exc:
            raise RegistryError(f"W&B rejected the API key ({scrub(str(exc))}); check WANDB_API_KEY") from exc
        except wandb.errors.UsageError as exc:
            raise RegistryError(f"cannot use the W&B API: {scrub(str(exc))}; check WANDB_API_KEY") from exc

    @staticmethod
    def _check_server() -> None:
        """The SDK's login check says "rejected the API key" for a refused connection, a hang and a
        500 alike, after its own timeout; one plain request first tells them apart, in seconds."""
        problem = wandb_server.key_problem(wandb_server.api_key() or "")
        if problem:
            raise RegistryError(
                f"WANDB_API_KEY is malformed ({problem.rstrip('.')}); copy the key again from your W&B "
                "settings page"
            )
        failure = wandb_server.check(PROBE_ATTEMPTS, PROBE_WAIT_MAX)
        if failure is not None:
            reason = advice(
                failure, "the W&B server", wandb_server.base_url(), "WANDB_BASE_URL", "WANDB_API_KEY"
            )
            raise RegistryError(f"cannot look up registry checkpoints: {reason}")

    def _translate(self, exc: Exception, ref: CheckpointRef, available: str = "") -> RegistryError:
        text = scrub(str(exc))
        if self._not_found(exc):
            what = "collection, version or alias" if ref.is_registry else "artifact, version or alias"
            return RegistryError(
                f"{ref.path} not found: no such {what} ({text.splitlines()[0] if text else 'no detail'}); "
                f"{available + '; ' if available else ''}check the name and alias (omit it for 'latest')"
            )
        failure = classify(exc)
        if failure.kind is not Kind.OTHER:
            # wandb-core reports a refused connection, a 5xx and a stall alike, after its own
            # retries: one plain request says which it is.
            probed = wandb_server.probe()
            if probed is None and failure.kind is Kind.TIMEOUT:  # the server is up; this lookup hung
                failure = Failure(
                    Kind.TIMEOUT, f"no answer within {self.timeout:g} s, set by WANDB_HTTP_TIMEOUT"
                )
            failure = probed or failure
            url = wandb_server.base_url()
            reason = advice(failure, "the W&B server", url, "WANDB_BASE_URL", "WANDB_API_KEY")
            return RegistryError(f"W&B request for {ref.path} failed: {reason}")
        first = text.splitlines()[0][:200] if text.strip() else type(exc).__name__
        return RegistryError(f"W&B request for {ref.path} failed ({first}); check the reference and retry")

    def artifact(self, ref: CheckpointRef) -> Any:
        try:
            return self.api.artifact(ref.path)
        except Exception as exc:  # transport failures surface as wandb-core API errors
            available = self._available(ref) if self._not_found(exc) and ref.alias != "latest" else ""
            raise self._translate(exc, ref, available) from exc

    @staticmethod
    def _not_found(exc: Exception) -> bool:
        """The server said the name does not exist: a 404, or the SDK's "... not found" answer.
        A ValueError of any other kind (a bug, a malformed answer) is not "not found"."""
        return classify(exc).kind is Kind.NOT_FOUND

    def _available(self, ref: CheckpointRef) -> str:
        """What the collection does hold, for the not-found message (best effort: extra lookups
        only on this error path)."""
        try:
            latest = self.api.artifact(replace(ref, alias="latest").path)
        except Exception:  # a hint for a message already failing  # noqa: BLE001
            return f"no collection {ref.name!r} in {ref.project}"
        text = f"{ref.name} has versions v0..{latest.version} (latest {latest.version})"
        try:
            aliases = sorted(latest.collection.aliases)
        except Exception:  # older SDK objects lack it  # noqa: BLE001
            aliases = sorted(latest.aliases)
        return f"{text}, aliases: {', '.join(aliases)}"

    def versions(self, ref: CheckpointRef) -> list[tuple[int, tuple[str, ...]]]:
        """Every version of ``ref``'s collection (its alias is ignored) as (index, aliases), oldest
        first. The latest version is looked up first: it names the artifact type the listing needs,
        and a collection that does not exist fails as any lookup does."""
        latest = self.artifact(replace(ref, alias="latest"))
        try:
            listed = self.api.artifacts(latest.type, ref.path.rpartition(":")[0], per_page=VERSIONS_PER_PAGE)
            # the name carries the collection's own version (vN); .version may be the source's
            found = [(int(str(a.name).rpartition(":v")[2]), tuple(a.aliases)) for a in listed]
        except Exception as exc:
            raise self._translate(exc, ref) from exc
        return sorted(found)

    def exists(self, ref: CheckpointRef, shown: CheckpointRef | None = None) -> bool:
        """Whether ``ref`` exists; a failure is reported under ``shown`` (the reference the user
        typed, when ``ref`` is its ``-local`` twin)."""
        try:
            return bool(self.api.artifact_exists(ref.path))
        except Exception as exc:
            raise self._translate(exc, shown or ref) from exc

    def entries(self, artifact: Any, ref: CheckpointRef, with_urls: bool = True) -> list[ManifestEntry]:
        """Manifest entries, with signed URLs for W&B-stored files unless only compared."""
        try:
            raw = list(artifact.manifest.entries.values())
            urls: dict[str, str] = {}
            if with_urls and any(not e.ref for e in raw):
                cursor: str | None = None
                while True:
                    page = _file_url_page(artifact, cursor)
                    for edge in page.edges:
                        urls[edge.node.name] = edge.node.direct_url
                    if not page.page_info.has_next_page:
                        break
                    cursor = page.page_info.end_cursor
        except Exception as exc:
            raise self._translate(exc, ref) from exc
        return [manifest_entry(e, None if e.ref else urls.get(str(e.path))) for e in raw]

    def identity(self, artifact: Any) -> ArtifactIdentity:
        return _identity(artifact, _producing_run(artifact))


def manifest_entry(entry: Any, url: str | None = None) -> ManifestEntry:
    """One SDK manifest entry as the downloader sees it."""
    extra = entry.extra or {}
    return ManifestEntry(
        path=str(entry.path),
        size=int(entry.size or 0),
        digest=str(entry.digest),
        ref=str(entry.ref) if entry.ref else None,
        url=url,
        version_id=extra.get("versionID"),
        # Untagged entries are MD5 (the SDK's own rule); W&B-stored XXH128 files say so in "alg".
        algorithm=str(extra.get("alg") or "MD5") if not entry.ref else "MD5",
    )


#: Versions asked for per page when a collection is listed (the SDK's default is 50).
VERSIONS_PER_PAGE = 100

#: Signed file URLs asked for per page (the SDK's own page size).
FILE_URLS_PER_PAGE = 5000


def _file_url_page(artifact: Any, cursor: str | None) -> Any:
    """One page of the version's signed file URLs. The SDK's ``_fetch_file_urls`` waits a fixed
    60 s per try and retries for 3 minutes; this waits the API's timeout (``WANDB_HTTP_TIMEOUT``),
    as every other lookup does, so one setting bounds them all."""
    from wandb.sdk.artifacts._generated import (
        GET_ARTIFACT_MEMBERSHIP_FILE_URLS_GQL,
        GetArtifactMembershipFileUrls,
    )
    from wandb.sdk.artifacts._models.pagination import FileWithUrlConnection

    result = artifact._service_api.execute_graphql(
        GET_ARTIFACT_MEMBERSHIP_FILE_URLS_GQL,
        variables={
            "entity": artifact.entity,
            "project": artifact.project,
            "collection": str(artifact.name).split(":", 1)[0],
            "alias": artifact.version,
            "cursor": cursor,
            "perPage": FILE_URLS_PER_PAGE,
        },
        parse=GetArtifactMembershipFileUrls.model_validate_json,
    )
    project = result.project
    collection = project.artifact_collection if project else None
    membership = collection.artifact_membership if collection else None
    if membership is None or membership.files is None:
        raise ValueError(f"the server lists no files for {artifact.name!r}")
    return FileWithUrlConnection.model_validate(membership.files)


def _producing_run(artifact: Any) -> str | None:
    """entity/project/run-id of the run that logged the artifact. One query: the SDK's
    ``logged_by()`` would load the whole run as well. Best effort: a deleted run must not
    block an evaluation."""
    try:
        from wandb.sdk.artifacts._generated import ARTIFACT_CREATED_BY_GQL, ArtifactCreatedBy, RunInfoFragment

        result = artifact._service_api.execute_graphql(
            ARTIFACT_CREATED_BY_GQL,
            variables={"id": artifact.id},
            parse=ArtifactCreatedBy.model_validate_json,
        )
        creator = result.artifact.created_by if result.artifact else None
        if isinstance(creator, RunInfoFragment) and creator.project is not None:
            return f"{creator.project.entity.name}/{creator.project.name}/{creator.name}"
    except Exception:  # lineage detail: never worth a failure  # noqa: BLE001
        return None
    return None


def _identity(artifact: Any, produced_by: str | None) -> ArtifactIdentity:
    # The SDK's qualified_name repeats the alias that was asked for; lineage wants the version.
    collection = str(artifact.name).split(":", 1)[0]
    return ArtifactIdentity(
        qualified_name=f"{artifact.entity}/{artifact.project}/{collection}:{artifact.version}",
        collection=collection,
        version=str(artifact.version),
        source_version=str(artifact.source_version),
        source_name=str(artifact.source_name),
        aliases=tuple(artifact.aliases),
        digest=str(artifact.digest),
        produced_by=produced_by,
    )
