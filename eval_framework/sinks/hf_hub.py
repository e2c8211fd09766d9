"""Upload a bundle to a Hugging Face dataset repo: one commit per bundle, URL kept for lineage.

The URL (the bundle's folder at the commit) goes into the bundle's ``metadata.json`` links and
the export ledger; the W&B run shows it in its config and notes. Uploading the same results again
finds the earlier commit in the ledger and makes no new one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from eval_framework.errors import ConfigError, HfUploadError, brief, missing_extra
from eval_framework.net import Kind, advice, classify
from eval_framework.results import LOG, METADATA, RESULTS, SAMPLES, Bundle
from eval_framework.sinks import ledger
from eval_framework.sinks.base import Exported, Status
from eval_framework.sinks.wandb_spec import content_hash

log = logging.getLogger(__name__)

BUNDLE_FILES = (METADATA, RESULTS, SAMPLES, LOG)
SINK = "Hugging Face"  #: how an HfUploadError names this sink


@dataclass(frozen=True)
class HfUploadOptions:
    repo: str  #: a dataset repo, e.g. my-org/eval-results
    directory: str = ""  #: folder inside the repo; the bundle's own folder goes below it


@dataclass(frozen=True)
class Asker:
    """What needs the Hub, as messages name it: the evaluation's and ``upload``'s flag, or the
    ``hf`` export destination (whose users never typed the flag)."""

    needs: str  #: what needs a token
    repo_setting: str  #: where the repo was given
    offline: str  #: what to do instead while HF_HUB_OFFLINE is set


FLAG = Asker(
    "--hf-upload-repo",
    "--hf-upload-repo",
    "drop --hf-upload-repo and run 'eval_framework upload' later where the Hub can be reached",
)
DEST = Asker(
    "the hf export destination (--dest hf)",
    "repo in --config",
    "leave out --dest hf now and run 'eval_framework export <bundles> --dest hf --config ...' later "
    "where the Hub can be reached",
)


#: The Hub client sets no overall time limit on these calls (a server that accepts the connection
#: and never answers would hold the command forever): seconds for the token check before an
#: evaluation, and for one bundle's upload (a few small files).
PREFLIGHT_TIMEOUT_S = 15.0
UPLOAD_TIMEOUT_S = 300.0
T = TypeVar("T")


def within(seconds: float, fn: Callable[[], T]) -> T:
    """``fn()``, or TimeoutError after ``seconds`` (the call is left to finish in the background)."""
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller  # noqa: BLE001
            outcome.append((False, exc))

    worker = threading.Thread(target=call, daemon=True, name="hf-hub-call")
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise TimeoutError(f"no answer within {seconds:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return cast(T, value)


def hf_token(asker: Asker = FLAG) -> str:
    """HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the token ``hf auth login`` saved."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if not token:
        try:
            from huggingface_hub import get_token

            token = get_token()
        except ImportError:
            token = None
    if not token:
        raise ConfigError(
            f"{asker.needs} needs a Hugging Face token with write access: set HF_TOKEN in the "
            "environment or .env"
        )
    return token


def endpoint() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return "https://huggingface.co"
    return str(constants.ENDPOINT)


def describe_failure(exc: BaseException) -> str:
    """A Hub failure in the words every boundary uses (``net.advice``)."""
    failure = classify(exc)
    if failure.kind in (Kind.OTHER, Kind.CLIENT, Kind.NOT_FOUND):
        return f"the Hugging Face Hub refused the request ({failure.reason}: {brief(exc)})"
    return advice(
        failure, "the Hugging Face Hub", endpoint(), "HF_ENDPOINT", "HF_TOKEN (it needs write access)"
    )


def preflight(options: HfUploadOptions, asker: Asker = FLAG) -> None:
    """Before an evaluation or export: the extra is installed, a token is there and the Hub accepts
    it. A Hub that cannot be reached now is not an error yet (the upload retries and says so)."""
    token = hf_token(asker)
    api = hf_api(token)
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ConfigError(
            f"{asker.needs} needs the Hugging Face Hub but HF_HUB_OFFLINE is set: unset it, or "
            f"{asker.offline}"
        )
    try:
        within(PREFLIGHT_TIMEOUT_S, api.whoami)
    except Exception as exc:
        failure = classify(exc)
        if failure.kind is Kind.AUTH:
            raise ConfigError(
                f"the Hugging Face Hub rejected the token ({failure.reason}): check HF_TOKEN (it needs write "
                f"access to {options.repo})"
            ) from exc
        log.info("Hugging Face Hub preflight: %s", describe_failure(exc))


def hf_api(token: str) -> Any:
    """The Hub client (the one seam tests replace)."""
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:
        raise missing_extra("huggingface_hub", "hub", ConfigError) from exc
    return HfApi(token=token)


def folder_url(endpoint: str, repo: str, revision: str, path: str) -> str:
    return f"{endpoint.rstrip('/')}/datasets/{repo}/tree/{revision}/{path}"


def repo_path(bundle: Bundle, options: HfUploadOptions) -> str:
    """The bundle's folder inside the repo."""
    return "/".join(p for p in (options.directory.strip("/"), bundle.dir.name) if p)


def uploaded_before(bundle: Bundle, options: HfUploadOptions, same_content: bool) -> dict[str, Any] | None:
    """The ledger's record of an earlier upload of this bundle to this place (of these very
    results, with ``same_content``)."""
    match = {"content_hash": content_hash(bundle)} if same_content else {}
    return ledger.last(bundle.dir, "hf", repo=options.repo, path=repo_path(bundle, options),
                       status="uploaded", **match)  # fmt: skip


def upload_bundle(
    bundle_dir: Path, options: HfUploadOptions, force: bool = False, asker: Asker = FLAG
) -> str:
    """Commit the bundle's files under ``<directory>/<bundle name>/``; returns the folder URL. The
    same results uploaded before make no new commit, unless ``force``."""
    bundle = Bundle(bundle_dir)
    if not bundle.is_complete():
        raise ConfigError(f"{bundle_dir} is not a finished evaluation bundle; finish or rerun it first")
    path_in_repo = repo_path(bundle, options)
    chash = content_hash(bundle)
    done = None if force else uploaded_before(bundle, options, same_content=True)
    if done:
        bundle.record_link("hf_upload_url", str(done["url"]))
        return str(done["url"])
    token = hf_token(asker)
    api = hf_api(token)
    from huggingface_hub import CommitOperationAdd, constants
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    operations = [
        CommitOperationAdd(path_in_repo=f"{path_in_repo}/{name}", path_or_fileobj=str(bundle.dir / name))
        for name in BUNDLE_FILES
        if (bundle.dir / name).is_file()
    ]

    def commit_bundle() -> Any:
        api.create_repo(options.repo, repo_type="dataset", exist_ok=True, private=True)
        return api.create_commit(
            repo_id=options.repo,
            repo_type="dataset",
            operations=operations,
            commit_message=f"Add evaluation results {bundle.dir.name}",
        )

    try:
        commit = within(UPLOAD_TIMEOUT_S, commit_bundle)
    except RepositoryNotFoundError as exc:
        raise HfUploadError(
            f"Hugging Face dataset repo {options.repo} not found or not writable with HF_TOKEN",
            sink=SINK,
            hint=f"check {asker.repo_setting} (owner/name) and the token's write access",
        ) from exc
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        raise HfUploadError(
            f"HTTP {status}: {brief(exc)}",
            sink=SINK,
            what=f"uploading {bundle.dir.name} to {options.repo}",
            hint="check HF_TOKEN (it needs write access)" if status in (401, 403) else "retry later",
        ) from exc
    except Exception as exc:  # transport failures (refused, timeout) come from the HTTP library
        raise HfUploadError(
            describe_failure(exc), sink=SINK, what=f"uploading {bundle.dir.name} to {options.repo}"
        ) from exc
    url = folder_url(constants.ENDPOINT, options.repo, commit.oid, path_in_repo)
    ledger.append(bundle.dir, {"destination": "hf", "status": "uploaded", "repo": options.repo,
                               "path": path_in_repo, "revision": commit.oid, "url": url,
                               "content_hash": chash})  # fmt: skip
    bundle.record_link("hf_upload_url", url)
    return url


class HfConfig(BaseModel):
    """The ``hf`` destination's keys (the --hf-upload-repo / --hf-upload-dir of ``upload``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(pattern=r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$", description="dataset repo, owner/name")
    directory: str = ""


class HfSink:
    """``--dest hf``: each bundle committed to a Hugging Face dataset repo (HF_TOKEN)."""

    name: ClassVar[str] = "hf"
    Config: ClassVar[type[BaseModel]] = HfConfig

    def __init__(self, config: HfConfig) -> None:
        self.options = HfUploadOptions(config.repo, config.directory)

    def preflight(self) -> None:
        preflight(self.options, DEST)

    def _status(self, bundle: Bundle, force: bool) -> Status:
        if uploaded_before(bundle, self.options, same_content=True) and not force:
            return "unchanged"
        return "updated" if uploaded_before(bundle, self.options, same_content=False) else "created"

    def preview(self, bundle: Bundle) -> Status:
        return self._status(bundle, force=False)

    def publish(self, bundle: Bundle, force: bool = False) -> Exported:
        status = self._status(bundle, force)
        url = upload_bundle(bundle.dir, self.options, force=force, asker=DEST)
        return Exported(self.name, bundle.dir, status, url)
